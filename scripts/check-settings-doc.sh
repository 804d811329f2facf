#!/usr/bin/env bash
# Fails when docs/settings.md is not what the catalogue table generates.
# Fix: build/atriumd --settings-reference > docs/settings.md
set -euo pipefail
atriumd=$1 doc=$2
if ! diff -u "$doc" <("$atriumd" --settings-reference); then
  echo "docs/settings.md is out of date: regenerate it with: $atriumd --settings-reference > docs/settings.md" >&2
  exit 1
fi
echo "docs/settings.md matches the catalogue"
