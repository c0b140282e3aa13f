#!/usr/bin/env bash
# vendor.sh re-vendors the viewer that /docs serves from the binary: the built standalone
# files of the npm package @stoplight/elements (web components and their stylesheet) and its
# licences, fetched once with npm. Usage: api/docs/vendor.sh [version] (default: the version
# in api/docs/VERSION); `make vendor-docs-viewer VERSION=x.y.z` runs it.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
version="${1:-$(cat "$dir/VERSION")}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@stoplight/elements@$version" >/dev/null && tar xzf stoplight-elements-*.tgz)
for f in web-components.min.js web-components.min.js.LICENSE.txt styles.min.css LICENSE; do
	cp "$tmp/package/$f" "$dir/$f"
done
echo "$version" >"$dir/VERSION"
echo "vendored @stoplight/elements@$version into $dir"
