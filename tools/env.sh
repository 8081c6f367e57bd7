# Sets up this shell to use a gio-dtls-openssl build from C and Python:
#
#   source tools/env.sh DIR
#
# DIR is an install prefix (meson install --prefix DIR), a meson build
# directory, or a cargo output directory (target/debug, target/release;
# the typelib is then expected in target/gir, see tools/gir.sh). Prepends to
#   LD_LIBRARY_PATH    the directory of libgiodtlsopenssl.so
#   GI_TYPELIB_PATH    the directory of DtlsOpenssl-1.0.typelib
#   PYTHONPATH         the site directory holding gi/overrides/DtlsOpenssl.py
#                      (this source tree's python/ for a build directory)
#   PKG_CONFIG_PATH    the directory of dtls-openssl.pc (installs only)
#   GIO_EXTRA_MODULES  a module directory whose entry is a symlink to that same
#                      library (for a build directory: DIR/gio-modules, created)
# and prints what it set. GIO_USE_TLS is left alone: set GIO_USE_TLS=dtls-openssl
# to make plain GIO programs pick the backend.

__dtls_env() {
    local dir src libdir="" typelib="" pysite="" pcdir="" moddir="" d f
    if [ $# -ne 1 ] || [ ! -d "$1" ]; then
        echo "usage: source tools/env.sh PREFIX|MESON_BUILD_DIR|CARGO_TARGET_SUBDIR" >&2
        return 2
    fi
    dir=$(cd "$1" && pwd)
    src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if [ -d "$dir/meson-info" ]; then                      # meson build directory
        libdir=$dir
        typelib=$dir/gir
        pysite=$src/python
        moddir=$dir/gio-modules
    elif [ -f "$dir/libgiodtlsopenssl.so" ]; then         # cargo output directory
        libdir=$dir
        for d in "$dir/gir" "$dir/../gir"; do
            if [ -f "$d/DtlsOpenssl-1.0.typelib" ]; then typelib=$(cd "$d" && pwd); break; fi
        done
        pysite=$src/python
        moddir=$dir/gio-modules
    else                                                   # install prefix
        for f in "$dir"/lib/libgiodtlsopenssl.so "$dir"/lib64/libgiodtlsopenssl.so \
                 "$dir"/lib/*/libgiodtlsopenssl.so; do
            if [ -f "$f" ]; then libdir=$(dirname "$f"); break; fi
        done
        if [ -z "$libdir" ]; then
            echo "env.sh: no libgiodtlsopenssl.so under $dir (lib, lib64, lib/<triplet>), nor a build directory" >&2
            return 1
        fi
        typelib=$libdir/girepository-1.0
        pcdir=$libdir/pkgconfig
        for f in "$dir"/lib*/python3*/*-packages/gi/overrides/DtlsOpenssl.py \
                 "$dir"/lib/*/python3*/*-packages/gi/overrides/DtlsOpenssl.py; do
            if [ -f "$f" ]; then pysite=$(cd "$(dirname "$f")/../.." && pwd); break; fi
        done
        [ -e "$libdir/gio/modules/libgiodtlsopenssl.so" ] && moddir=$libdir/gio/modules
    fi
    if [ -n "$moddir" ] && [ ! -e "$moddir/libgiodtlsopenssl.so" ]; then
        # A symlink, never a copy: one file, so a process that links the
        # library and loads the module maps it once.
        mkdir -p "$moddir" && ln -sf "$libdir/libgiodtlsopenssl.so" "$moddir/" || return 1
    fi
    __dtls_prepend() { # VAR DIR
        [ -n "$2" ] && [ -d "$2" ] || return 0
        case ":${!1:-}:" in *":$2:"*) ;; *) export "$1=$2${!1:+:${!1}}" ;; esac
        echo "$1=${!1}"
    }
    __dtls_prepend LD_LIBRARY_PATH "$libdir"
    __dtls_prepend GI_TYPELIB_PATH "$typelib"
    __dtls_prepend PYTHONPATH "$pysite"
    __dtls_prepend PKG_CONFIG_PATH "$pcdir"
    __dtls_prepend GIO_EXTRA_MODULES "$moddir"
    unset -f __dtls_prepend
    [ -n "$typelib" ] && [ -f "$typelib/DtlsOpenssl-1.0.typelib" ] ||
        echo "env.sh: no DtlsOpenssl-1.0.typelib found (cargo builds: tools/gir.sh $libdir $libdir/../gir)" >&2
    [ -n "$pysite" ] || echo "env.sh: no gi/overrides/DtlsOpenssl.py under $dir" >&2
    return 0
}
if __dtls_env "$@"; then
    unset -f __dtls_env
else
    unset -f __dtls_env
    return 1 2>/dev/null || exit 1
fi
