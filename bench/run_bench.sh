#!/bin/sh
# Benchmark of libnss_entra.so.2 against glibc's `files`, same users, same
# run: needs root for a private mount namespace, in which an overlay on the
# library directory receives the module, and /etc/passwd and
# /etc/nsswitch.conf are bind-mounted. Nothing outside the namespace changes.
#   bench/run_bench.sh BUILDDIR
set -eu
B=${1:?usage: run_bench.sh BUILDDIR}
BENCH=$B/bench/bench_nss
SO=$(readlink -f "$B/nss_module/.libs/libnss_entra.so.2")
SIZES=${BENCH_SIZES:-"10 100000"}

if [ "$(id -u)" != 0 ]; then
	echo "bench: needs root (private mount namespace)" >&2
	exit 1
fi
W=$(mktemp -d /tmp/bench_nss.XXXXXX)
chmod 755 "$W"
trap 'rm -rf "$W"' EXIT INT TERM
LIBDIR=$(dirname "$(readlink -f "$(ldd /bin/true | awk '/libc\.so\.6/ { print $3 }')")")
mkdir "$W/upper" "$W/work"
sed -E 's/^(passwd|group):.*/\1: files/' /etc/nsswitch.conf > "$W/nsswitch.files"
sed -E 's/^(passwd|group):.*/\1: entra/' /etc/nsswitch.conf > "$W/nsswitch.entra"
for n in $SIZES; do
	mkdir -m 755 "$W/db$n"
	"$BENCH" build "$W/db$n" "$W/passwd$n" "$n"
done

unshare -m sh -eu -c '
	mount --make-rprivate /
	mount -t overlay overlay -o lowerdir="$1",upperdir="$2/upper",workdir="$2/work" "$1"
	cp "$3" "$1/libnss_entra.so.2"
	for n in $5; do
		mount --bind "$2/passwd$n" /etc/passwd
		mount --bind "$2/nsswitch.files" /etc/nsswitch.conf
		"$4" glibc "$n" | sed "s/^glibc/files $n/"
		umount /etc/nsswitch.conf
		mount --bind "$2/nsswitch.entra" /etc/nsswitch.conf
		ENTRA_NSS_DB_DIR="$2/db$n" "$4" glibc "$n" | sed "s/^glibc/entra $n/"
		umount /etc/nsswitch.conf
		umount /etc/passwd
		"$4" direct "$3" "$2/db$n" "$n" | sed "s/^direct/direct $n/"
	done
' sh "$LIBDIR" "$W" "$SO" "$BENCH" "$SIZES" > "$W/results"

echo "ns per lookup (wall clock; files and entra through glibc's getpw*_r, direct = module entry point)"
printf "%-8s %-11s %-5s %12s %12s %12s %10s\n" users call kind files entra direct files/entra
awk '
	{ key = $2 " " $3 " " $4; v[$1 " " key] = $5; if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
	END {
		for (i = 1; i <= n; i++) {
			split(order[i], k, " ")
			f = v["files " order[i]]; e = v["entra " order[i]]; d = v["direct " order[i]]
			printf "%-8s %-11s %-5s %12.1f %12.1f %12.1f %9.0fx\n", k[1], k[2], k[3], f, e, d, f / e
		}
	}' "$W/results"

if command -v valgrind > /dev/null 2>&1; then
	echo
	echo "instructions per lookup (callgrind, module entry point; difference of 11000 and 1000 lookups)"
	for n in $SIZES; do
		for kind in 0 1 2 3; do
			for it in 1000 11000; do
				BENCH_KIND=$kind valgrind --tool=callgrind --callgrind-out-file="$W/cg.$n.$kind.$it" \
					"$BENCH" direct "$SO" "$W/db$n" "$n" "$it" > "$W/cg.out" 2> "$W/cg.err"
			done
			a=$(awk '/^summary:|^totals:/ { print $2; exit }' "$W/cg.$n.$kind.1000")
			b=$(awk '/^summary:|^totals:/ { print $2; exit }' "$W/cg.$n.$kind.11000")
			label=$(awk '{ print $2, $3 }' "$W/cg.out")
			echo "$n $label $a $b" | awk '{ printf "%-8s %-11s %-5s %8.1f instructions\n", $1, $2, $3, ($5 - $4) / 10000 }'
		done
	done
fi
