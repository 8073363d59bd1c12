#!/usr/bin/env bash
# Build a folder of held-out evaluation photos (default data/heldout): wallpapers from
# Debian packages that the project never trains or tunes on (mate-backgrounds,
# ukui-wallpapers, lomiri-wallpapers). Packages are only downloaded and unpacked.
set -euo pipefail
out="${1:-$(dirname "$0")/heldout}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
(cd "$work" && apt-get download mate-backgrounds ukui-wallpapers lomiri-wallpapers >/dev/null)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
find "$work/root/usr/share/backgrounds" -type f \( -iname '*.jpg' -o -iname '*.png' \) | while read -r f; do
    relative="${f#"$work"/root/usr/share/backgrounds/}"
    cp "$f" "$out/${relative//\//-}"
done
echo "$(ls "$out" | wc -l) photos in $out"
