#!/usr/bin/env bash
# Fails when a guide under docs/ is not among the pages atriumd serves at
# /docs/ (the docs_pages list in meson.build). Screenshots are not served:
# render-docs.py keeps their labels as text.
set -euo pipefail
top=$1
missing=0
while IFS= read -r md; do
  rel=${md#"$top"/}
  if ! grep -q "'$rel'" "$top/meson.build"; then
    echo "$rel is not in docs_pages in meson.build: add it so /docs/ serves it" >&2
    missing=1
  fi
done < <(find "$top/docs" -name '*.md' | sort)
[ "$missing" -eq 0 ] && echo "every guide is served at /docs/"
exit "$missing"
