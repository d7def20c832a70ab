#!/usr/bin/env bash
# Refresh the web page's vendored libraries from the npm registry, at the pinned versions below.
# They ship inside the package (cnnlab/serve/static/vendor) so `cnnlab serve` works offline, with no CDN.
#   uPlot       charts: 50 KB, draws thousands of points per frame on a canvas (live per-batch curves)
#   SortableJS  drag-to-reorder for the layer list, with touch support
set -euo pipefail
UPLOT=1.6.32
SORTABLE=1.15.7
dest="$(cd "$(dirname "$0")/.." && pwd)/cnnlab/serve/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "uplot@$UPLOT" "sortablejs@$SORTABLE" >/dev/null
for f in *.tgz; do mkdir "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}" --strip-components 1; done
mkdir -p "$dest"
cp "uplot-$UPLOT/dist/uPlot.iife.min.js" "uplot-$UPLOT/dist/uPlot.min.css" "$dest/"
cp "uplot-$UPLOT/LICENSE" "$dest/uPlot.LICENSE"
cp "sortablejs-$SORTABLE/Sortable.min.js" "$dest/"
cp "sortablejs-$SORTABLE/LICENSE" "$dest/Sortable.LICENSE"
printf 'uplot %s\nsortablejs %s\n' "$UPLOT" "$SORTABLE" > "$dest/VERSIONS"
echo "vendored into $dest: uPlot $UPLOT, SortableJS $SORTABLE"
