#!/usr/bin/env python3
"""Renders the project's Markdown documentation to HTML pages in a C table.

usage: render-docs.py --base DIR -o docs_pages.c FILE...

atriumd serves the table at /docs/ (src/mod/published/pages.c) when docs.url is left
blank. A FILE.md under DIR becomes FILE.html (and index.html lists them);
any other FILE (the pages' stylesheet and scripts, share/pages/) is taken as
it is, under its base name. The renderer knows the Markdown the docs use and nothing more:
headings, paragraphs, lists, fenced code, pipe tables, block quotes, and
inline code, emphasis and links (a link to X.md becomes X.html; a relative
link to a file that is not served, such as a screenshot, keeps only its label). Every piece
of text is HTML-escaped; link targets other than relative paths, http(s) and
mailto are dropped. The pages carry no script and a stylesheet of their own
(pages.css), so the server's Content-Security-Policy (default-src 'self')
holds.
"""
import argparse
import html
import os
import re
import sys

INLINE = re.compile(r'`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)|\*([^*\s][^*]*)\*')


# What the pages can link to: the rendered pages and assets (paths under
# /docs/), and the directory of the page being rendered. A relative link to
# anything else (README.md, a screenshot, source) would answer 404 at /docs/:
# its label stays, as text.
SERVED = set()
PAGE_DIR = ['']


def link_target(url):
    if re.match(r'^(https?:|mailto:)', url):
        return url
    if re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', url):
        return None  # javascript:, data:, ... never
    path, frag = (url.split('#', 1) + [''])[:2]
    if path.endswith('.md'):
        path = path[:-3] + '.html'
    if path and SERVED:
        served = os.path.normpath(os.path.join(PAGE_DIR[0], path)).replace(os.sep, '/')
        if served not in SERVED:
            return None
    return path + ('#' + frag if frag else '')


def inline(text):
    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        code, bold, label, url, em = m.groups()
        if code is not None:
            out.append('<code>%s</code>' % html.escape(code))
        elif bold is not None:
            out.append('<strong>%s</strong>' % inline(bold))
        elif label is not None:
            target = link_target(url)
            if target is None:
                out.append(inline(label))
            else:
                out.append('<a href="%s">%s</a>' % (html.escape(target, quote=True), inline(label)))
        else:
            out.append('<em>%s</em>' % inline(em))
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return ''.join(out)


def slug(text):
    s = re.sub(r'[^a-z0-9 -]', '', text.lower()).strip().replace(' ', '-')
    return s or 'section'


def table_cells(line):
    line = line.strip()
    if line.startswith('|'):
        line = line[1:]
    if line.endswith('|'):
        line = line[:-1]
    return [c.strip() for c in line.split('|')]


def render(md):
    lines = md.split('\n')
    out, i, title = [], 0, None
    para = []

    def flush():
        if para:
            out.append('<p>%s</p>' % inline(' '.join(para)))
            para.clear()

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith('```'):
            flush()
            i += 1
            code = []
            while i < len(lines) and not lines[i].strip().startswith('```'):
                code.append(lines[i])
                i += 1
            out.append('<pre><code>%s</code></pre>' % html.escape('\n'.join(code)))
            i += 1
            continue
        m = re.match(r'^(#{1,6})\s+(.*)$', s)
        if m:
            flush()
            level, text = len(m.group(1)), m.group(2).strip().rstrip('#').strip()
            if title is None:
                title = text
            out.append('<h%d id="%s">%s</h%d>' % (level, slug(text), inline(text), level))
            i += 1
            continue
        if s.startswith('|') and i + 1 < len(lines) and re.match(r'^\s*\|?[\s:|-]+\|?\s*$', lines[i + 1]) \
                and '-' in lines[i + 1]:
            flush()
            head = table_cells(s)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith('|'):
                rows.append(table_cells(lines[i]))
                i += 1
            out.append('<table><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (
                ''.join('<th>%s</th>' % inline(c) for c in head),
                ''.join('<tr>%s</tr>' % ''.join('<td>%s</td>' % inline(c) for c in r) for r in rows)))
            continue
        m = re.match(r'^(\s*)([-*]|\d+\.)\s+(.*)$', line)
        if m:
            flush()
            ordered = m.group(2)[0].isdigit()
            items = []
            while i < len(lines):
                m = re.match(r'^(\s*)([-*]|\d+\.)\s+(.*)$', lines[i])
                if m:
                    items.append(m.group(3).strip())
                elif lines[i].strip() and lines[i].startswith((' ', '\t')) and items:
                    items[-1] += ' ' + lines[i].strip()
                else:
                    break
                i += 1
            tag = 'ol' if ordered else 'ul'
            out.append('<%s>%s</%s>' % (tag, ''.join('<li>%s</li>' % inline(it) for it in items), tag))
            continue
        if s.startswith('>'):
            flush()
            quote = []
            while i < len(lines) and lines[i].strip().startswith('>'):
                quote.append(lines[i].strip()[1:].strip())
                i += 1
            out.append('<blockquote><p>%s</p></blockquote>' % inline(' '.join(quote)))
            continue
        if not s:
            flush()
        elif line.startswith('    ') and not para:
            code = []
            while i < len(lines) and (lines[i].startswith('    ') or not lines[i].strip()):
                code.append(lines[i][4:])
                i += 1
            out.append('<pre><code>%s</code></pre>' % html.escape('\n'.join(code).rstrip('\n')))
            continue
        else:
            para.append(s)
        i += 1
    flush()
    return title, '\n'.join(out)


def page(title, body, depth):
    up = '../' * depth
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<title>%s · Atrium documentation</title>\n'
            '<link rel="stylesheet" href="%spages.css">\n</head>\n<body>\n'
            '<nav><a href="%s">Atrium documentation</a></nav>\n<main>\n%s\n</main>\n</body>\n</html>\n'
            % (html.escape(title), up, up or './', body))


def c_bytes(data):
    return '\n'.join('  ' + ''.join('0x%02x,' % b for b in data[i:i + 16])
                     for i in range(0, len(data), 16))


def c_string(s):
    return '"%s"' % s.replace('\\', '\\\\').replace('"', '\\"')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--base', required=True)
    ap.add_argument('-o', '--output', required=True)
    ap.add_argument('files', nargs='+')
    args = ap.parse_args()
    base = os.path.realpath(args.base)
    rows, assets = [], []
    for f in args.files:
        if f.endswith('.md'):
            SERVED.add(os.path.relpath(os.path.realpath(f), base).replace(os.sep, '/')[:-3] + '.html')
        else:
            SERVED.add(os.path.basename(f))
    SERVED.add('index.html')
    types = {'.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8'}
    for f in args.files:
        if not f.endswith('.md'):
            ext = os.path.splitext(f)[1]
            if ext not in types:
                sys.exit('render-docs: no content type known for %s' % f)
            with open(f, 'rb') as fh:
                assets.append((os.path.basename(f), os.path.basename(f), types[ext], fh.read()))
            continue
        rel = os.path.relpath(os.path.realpath(f), base).replace(os.sep, '/')
        if rel.startswith('..') or not rel.endswith('.md'):
            sys.exit('render-docs: %s is not a .md file under %s' % (f, base))
        PAGE_DIR[0] = os.path.dirname(rel)
        with open(f, encoding='utf-8') as fh:
            title, body = render(fh.read())
        title = title or rel[:-3]
        path = rel[:-3] + '.html'
        rows.append((path, title, 'text/html; charset=utf-8',
                     page(title, body, rel.count('/')).encode('utf-8')))
    links = ''.join('<li><a href="%s">%s</a></li>' % (html.escape(p, quote=True), html.escape(t))
                    for p, t, _, _ in sorted(rows, key=lambda r: r[1].lower()))
    rows.append(('index.html', 'Contents', 'text/html; charset=utf-8',
                 page('Contents', '<h1>Atrium documentation</h1>\n<ul>%s</ul>' % links, 0)
                 .encode('utf-8')))
    rows += assets
    rows.sort(key=lambda r: r[0])
    for a, b in zip(rows, rows[1:]):
        if a[0] == b[0]:
            sys.exit('render-docs: %s given twice' % a[0])

    out = ['/* Generated by scripts/render-docs.py from docs/; do not edit. */',
           '#include <stddef.h>', '', '#include "mod/published/published.h"', '']
    for i, (_, _, _, data) in enumerate(rows):
        out.append('static const unsigned char doc_%d[%d] = {' % (i, len(data) + 1))
        if data:
            out.append(c_bytes(data))
        out.append('  0x00,')
        out.append('};')
    out.append('const published_doc_t published_docs[] = {')
    for i, (path, title, ctype, data) in enumerate(rows):
        out.append('    {.path = %s, .title = %s, .content_type = %s, .bytes = doc_%d, .length = %d},'
                   % (c_string(path), c_string(title), c_string(ctype), i, len(data)))
    out.append('};')
    out.append('const size_t published_docs_count = sizeof published_docs / sizeof published_docs[0];')
    tmp = args.output + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as fh:
        fh.write('\n'.join(out) + '\n')
    os.replace(tmp, args.output)


if __name__ == '__main__':
    main()
