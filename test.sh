#!/usr/bin/env bash
# The whole test suite, as the README says: installs what the tests need
# and are not Go (Debian's chromium, for the web app's browser tests), then
# runs `go test` on every package. Arguments go to `go test`, before the
# package list: ./test.sh -run Browser -v
set -euo pipefail
cd "$(dirname "$0")"

# The browser tests drive a real headless Chromium. Debian and Ubuntu ship
# it as the package chromium (Ubuntu's is a snap stub; use Debian's). The
# colour emoji font makes reactions in the screenshots the tests take look
# as a person sees them (the tests read text, not glyphs).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]} (Debian packages) for the browser tests" >&2
	sudo=""
	if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

go test "$@" ./...
