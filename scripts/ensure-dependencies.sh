# Installs what Matomete needs from the system when it is missing:
# librdkafka (with headers, found through pkg-config) and the PostgreSQL server;
# with `browser`, also the real browser the site tests drive (chromium and
# chromedriver, with a Japanese font so that screenshots are readable).
# Sourced by scripts/demo.sh and scripts/test.sh (`ensure_dependencies browser`).

ensure_dependencies() {
    local browser="${1:-}"
    case "$(uname -s)" in
    Linux)
        local missing=()
        command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
        pkg-config --exists rdkafka 2>/dev/null || missing+=(librdkafka-dev)
        compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
        if [ "$browser" = "browser" ]; then
            command -v chromium >/dev/null 2>&1 || missing+=(chromium)
            command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
            [ -e /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf ] || missing+=(fonts-ipafont-gothic)
        fi
        if [ ${#missing[@]} -gt 0 ]; then
            echo "Installing missing packages: ${missing[*]}" >&2
            local sudo=""
            if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
            $sudo apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
        fi
        ;;
    Darwin)
        command -v brew >/dev/null 2>&1 || { echo "Install Homebrew first: https://brew.sh" >&2; return 1; }
        pkg-config --exists rdkafka 2>/dev/null || brew install librdkafka pkg-config
        command -v initdb >/dev/null 2>&1 || brew install postgresql@16
        if [ "$browser" = "browser" ]; then
            command -v chromedriver >/dev/null 2>&1 || brew install --cask chromium chromedriver
        fi
        ;;
    *)
        echo "Unsupported system $(uname -s): install librdkafka and PostgreSQL by hand." >&2
        ;;
    esac
}
