#!/bin/sh
# Installs kairo-gw from a built checkout into the layout the systemd unit expects
# (systemd/README.md), then sets up its user, directories and udev rules.
#
#   npm ci && npm run build          # in the checkout, first (builds dist/ and the native addons)
#   sudo systemd/install.sh          # install, create user kairo, reload udev and systemd
#   sudo systemctl enable --now kairo-gw
#
#   systemd/install.sh --destdir DIR [--dist DIR]
#       only copy the files under DIR (a package build root or a test tree); nothing is run
#       against the live system. --dist takes the compiled JavaScript from another directory
#       than <checkout>/dist.
#
# Installed:
#   /usr/lib/kairo-gw/{package.json,dist/,node_modules/}   the application, production deps only
#   /usr/bin/kairo-gw                                       the CLI (runs the same dist/)
#   /usr/lib/systemd/system/kairo-gw.service
#   /usr/lib/sysusers.d/kairo-gw.conf  /usr/lib/tmpfiles.d/kairo-gw.conf
#   /usr/lib/udev/rules.d/60-kairo-gw.rules
#   /usr/share/doc/kairo-gw/systemd.md                      (docs/systemd.md)
# Not touched: /etc/kairo-gw/config.yaml (yours to write), /var/lib/kairo-gw (the node's state).
set -eu

die() { echo "install.sh: $*" >&2; exit 1; }

checkout=$(cd "$(dirname "$0")/.." && pwd)
destdir=""
dist="$checkout/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$(cd "$2" && pwd); shift 2 ;;
    --dist) [ $# -ge 2 ] || die "--dist needs a directory"; dist=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

[ -f "$dist/appliance/cli/main.js" ] || die "$dist/appliance/cli/main.js is missing: run 'npm run build' first"
[ -f "$checkout/appliance/native/build/Release/kairo_native.node" ] || die "kairo-native is not built: run 'npm ci' first"
if [ -z "$destdir" ]; then
  [ "$(id -u)" = 0 ] || die "run as root (or with --destdir DIR)"
  [ -x /usr/bin/node ] || die "/usr/bin/node is missing: the unit runs Node from there (install Node 20+, or link it there)"
fi

app="$destdir/usr/lib/kairo-gw"
stage="$app.new"
rm -rf "$stage"
mkdir -p "$stage/node_modules"
cp "$checkout/package.json" "$checkout/package-lock.json" "$stage/"
cp -R "$dist" "$stage/dist"

# The production dependencies, as npm resolved them in the checkout (already built there):
# every top-level entry of node_modules that `npm ls --omit=dev` lists, copied with links
# followed, so the file: packages (kairo-native, cap) become plain directories.
(cd "$checkout" && npm ls --omit=dev --all --parseable 2>/dev/null) \
  | sed "s|^$checkout/||" \
  | grep -E '^node_modules/(@[^/]+/)?[^/]+$' \
  | while read -r rel; do
      mkdir -p "$stage/$(dirname "$rel")"
      cp -RL "$checkout/$rel" "$stage/$rel"
    done
[ -f "$stage/node_modules/kairo-native/build/Release/kairo_native.node" ] || die "npm ls did not list kairo-native: is the checkout installed (npm ci)?"
rm -rf "$stage/node_modules/.bin"

if [ -d "$app" ]; then rm -rf "$app.old"; mv "$app" "$app.old"; fi
mv "$stage" "$app"
rm -rf "$app.old"

install -d "$destdir/usr/bin" "$destdir/usr/lib/systemd/system" "$destdir/usr/lib/sysusers.d" \
  "$destdir/usr/lib/tmpfiles.d" "$destdir/usr/lib/udev/rules.d" "$destdir/usr/share/doc/kairo-gw" \
  "$destdir/usr/share/kairo-gw"
cat > "$destdir/usr/bin/kairo-gw.new" <<'EOF'
#!/bin/sh
# kairo-gw CLI (installed by systemd/install.sh): the application in /usr/lib/kairo-gw.
exec /usr/bin/node /usr/lib/kairo-gw/dist/appliance/cli/main.js "$@"
EOF
chmod 0755 "$destdir/usr/bin/kairo-gw.new"
mv "$destdir/usr/bin/kairo-gw.new" "$destdir/usr/bin/kairo-gw"
install -m 0644 "$checkout/systemd/kairo-gw.service" "$destdir/usr/lib/systemd/system/kairo-gw.service"
install -m 0644 "$checkout/systemd/sysusers.d/kairo-gw.conf" "$destdir/usr/lib/sysusers.d/kairo-gw.conf"
install -m 0644 "$checkout/systemd/tmpfiles.d/kairo-gw.conf" "$destdir/usr/lib/tmpfiles.d/kairo-gw.conf"
install -m 0644 "$checkout/systemd/udev/60-kairo-gw.rules" "$destdir/usr/lib/udev/rules.d/60-kairo-gw.rules"
install -m 0644 "$checkout/docs/systemd.md" "$destdir/usr/share/doc/kairo-gw/systemd.md"
install -m 0644 "$checkout/docs/pcap.md" "$destdir/usr/share/doc/kairo-gw/pcap.md"
# The Wireshark dissector, for auditors who copy captures off the gateway (docs/pcap.md).
install -m 0644 "$checkout/pcap/kairo-gw.lua" "$destdir/usr/share/kairo-gw/kairo-gw.lua"

if [ -n "$destdir" ]; then
  echo "installed under $destdir"
  exit 0
fi

systemd-sysusers kairo-gw.conf
systemd-tmpfiles --create kairo-gw.conf
if command -v udevadm >/dev/null 2>&1; then
  udevadm control --reload || true
  udevadm trigger --action=change --subsystem-match=tty --subsystem-match=gpio --subsystem-match=misc || true
fi
systemctl daemon-reload
cat <<EOF
kairo-gw installed in /usr/lib/kairo-gw.
Next:
  write /etc/kairo-gw/config.yaml          (a complete example: kairo-gw config check --help)
  kairo-gw config check /etc/kairo-gw/config.yaml
  systemctl enable --now kairo-gw
  usermod -aG kairo YOUR_LOGIN             (to use the CLI without sudo; log in again)
EOF
