# Prints, one per line, the `[[interface]]` names of a Rouge configuration that Rouge
# drives with AF_PACKET (`driver` absent or "afpacket"): the NICs whose kernel copy of
# each frame rouge-nics drops (in the image: /sbin/rouge-nics; on bare metal: the
# rouge-nics scripts/install.sh writes). POSIX and busybox awk.
function flush() {
    if (name != "" && (driver == "" || driver == "afpacket")) print name
    name = ""; driver = ""
}
/^[ \t]*\[/ { if (inif) flush(); inif = ($0 ~ /^[ \t]*\[\[interface\]\]/); next }
inif && /^[ \t]*name[ \t]*=/ { v = $0; gsub(/^[^=]*=[ \t]*"|".*$/, "", v); name = v }
inif && /^[ \t]*driver[ \t]*=/ { v = $0; gsub(/^[^=]*=[ \t]*"|".*$/, "", v); driver = v }
END { if (inif) flush() }
