#!/usr/bin/env bash
# Keeps one copy of each native library that llama-cpp-python installs.
#
#   scripts/slim-llama-libs.sh SITE_PACKAGES
#
# Its wheel holds every library six times. A wheel cannot hold symbolic
# links, so llama_cpp/lib gets libX.so, libX.so.0 and libX.so.0.25.3 as three
# full copies; and the wheel also carries CMake's install tree (lib/ and
# include/ at the top of site-packages), which nothing loads. Built for CUDA,
# libggml-cuda.so alone is some 150 MB a copy. This keeps the longest name of
# each library as the file and turns the other names into links to it (after
# checking they are the same bytes), and deletes the install tree's files
# (those the wheel's RECORD lists). The Dockerfile runs it.
set -euo pipefail

site=${1:?usage: scripts/slim-llama-libs.sh SITE_PACKAGES}
lib=$site/llama_cpp/lib
[ -d "$lib" ] || { echo "slim: no llama_cpp/lib in $site" >&2; exit 1; }
shopt -s nullglob

size_mb() { { du -smc "$@" 2>/dev/null || true; } | tail -n 1 | cut -f1; }
before=$(size_mb "$lib" "$site/lib" "$site/include")

# CMake's install tree: only the files llama-cpp-python's RECORD lists, then
# the folders they leave empty, so another package's files stay.
records=("$site"/llama_cpp_python-*.dist-info/RECORD)
[ "${#records[@]}" -eq 1 ] || { echo "slim: expected one llama_cpp_python dist-info in $site" >&2; exit 1; }
while IFS=, read -r path _; do
    case $path in
        lib/* | include/*) rm -f -- "$site/$path" ;;
    esac
done <"${records[0]}"
for tree in "$site/lib" "$site/include"; do
    [ -d "$tree" ] && find "$tree" -depth -type d -empty -delete
done

# One file per library; its other names become links, as a CMake install
# would have made them.
cd "$lib"
for plain in lib*.so; do
    [ -L "$plain" ] && continue
    real=$plain
    for name in "$plain".*; do
        [ "${#name}" -gt "${#real}" ] && real=$name
    done
    for name in "$plain" "$plain".*; do
        if [ "$name" = "$real" ] || [ -L "$name" ]; then
            continue
        fi
        if cmp -s "$name" "$real"; then
            ln -sf "$real" "$name"
        else
            echo "slim: $lib/$name differs from $real; kept as it is" >&2
        fi
    done
done

echo "slim: llama-cpp-python's libraries: ${before} MB -> $(size_mb "$lib" "$site/lib" "$site/include") MB"
