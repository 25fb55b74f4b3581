#!/bin/sh
# Image entrypoint: the first argument picks the program, the rest are its flags.
#   docker run ctxstream inference --log_level=debug
#   docker run ctxstream ctxctl health controller:50050
set -eu
usage() {
  echo "usage: <controller|inference|kvcache|compressor|ctxctl> [flags...]" >&2
  echo "       (models are in /opt/ctxstream/models)" >&2
}
if [ "$#" -eq 0 ]; then
  usage
  exit 2
fi
cmd=$1
shift
case "$cmd" in
  controller | inference | kvcache | compressor)
    exec "/usr/local/bin/ctxstream-$cmd" "$@"
    ;;
  ctxctl)
    exec /usr/local/bin/ctxctl "$@"
    ;;
  -h | --help | help)
    usage
    exit 0
    ;;
  *)
    echo "ctxstream: unknown program '$cmd'" >&2
    usage
    exit 2
    ;;
esac
