#!/usr/bin/env bash
# Builds the Java client and runs its tests offline, from the Java artifacts Debian 12 packages in
# /usr/share/maven-repo (no Maven Central). The tests start the real server binary,
# ../../target/release/killbill-auth (cargo build --release), or $KILLBILL_AUTH_BIN.
#
#   clients/java/test.sh              # build, test, package; exit status of the test run
#   clients/java/test.sh -Dtest=PlayerTest   # extra arguments go to Maven
#
# It installs nothing. When something is missing it stops with one line naming the Debian package:
#   apt-get install -y maven default-jdk-headless libgoogle-gson-java junit5 \
#       libmaven-compiler-plugin-java libmaven-resources-plugin-java libmaven-jar-plugin-java libsurefire-java
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo=/usr/share/maven-repo

missing() { # what is missing, the package that ships it
    echo "clients/java/test.sh: missing $1: apt-get install -y $2" >&2
    exit 2
}

command -v java >/dev/null 2>&1 || missing "java" default-jdk-headless
command -v javac >/dev/null 2>&1 || missing "javac (a JDK)" default-jdk-headless
command -v mvn >/dev/null 2>&1 || missing "mvn" maven

# The artifacts the pom asks for, at the versions debian-settings.xml selects.
while read -r path package; do
    [ -e "$repo/$path" ] || missing "$repo/$path" "$package"
done <<'LIST'
com/google/code/gson/gson/2.10/gson-2.10.pom libgoogle-gson-java
org/junit/jupiter/junit-jupiter-api/5.9.2/junit-jupiter-api-5.9.2.pom junit5
org/junit/jupiter/junit-jupiter-engine/5.9.2/junit-jupiter-engine-5.9.2.pom junit5
org/apache/maven/plugins/maven-compiler-plugin/3.10.1/maven-compiler-plugin-3.10.1.pom libmaven-compiler-plugin-java
org/apache/maven/plugins/maven-resources-plugin/3.3.0/maven-resources-plugin-3.3.0.pom libmaven-resources-plugin-java
org/apache/maven/plugins/maven-jar-plugin/3.3.0/maven-jar-plugin-3.3.0.pom libmaven-jar-plugin-java
org/apache/maven/plugins/maven-surefire-plugin/2.22.3/maven-surefire-plugin-2.22.3.pom libsurefire-java
org/apache/maven/surefire/surefire-junit-platform/2.22.3/surefire-junit-platform-2.22.3.pom libsurefire-java
LIST

bin="${KILLBILL_AUTH_BIN:-$here/../../target/release/killbill-auth}"
if [ ! -x "$bin" ]; then
    echo "clients/java/test.sh: no server binary at $bin: run \`cargo build --release\` in the repository's root (or set KILLBILL_AUTH_BIN)" >&2
    exit 2
fi

cd "$here" || exit 2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The local repository (.debian-m2/, ignored by git) is filled from /usr/share/maven-repo, which is
# only read; debian-settings.xml mirrors every repository there, so nothing is downloaded.
mvn -B -ntp -Dstyle.color=never -s debian-settings.xml -Dmaven.repo.local="$here/.debian-m2" package "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

if [ "$status" -ne 0 ]; then
    # An artifact that no installed package ships: name the package where it is known.
    coords='[a-zA-Z0-9_.-]+:[a-zA-Z0-9_.-]+(:[a-zA-Z0-9_.-]+)+'
    coordinate="$( { grep -oE "(Could not (find|resolve) artifact|Failure to find|Plugin) $coords" "$log"
                     grep -oE "$coords was not found" "$log" | sed 's/ was not found$//'; } | head -n 1)"
    if [ -n "$coordinate" ]; then
        coordinate="${coordinate##* }"
        group="${coordinate%%:*}"; rest="${coordinate#*:}"; artifact="${rest%%:*}"
        case "$group:$artifact" in
            com.google.code.gson:*) package=libgoogle-gson-java ;;
            org.junit.*|org.opentest4j:*|org.apiguardian:*) package=junit5 ;;
            org.apache.maven.surefire:*|*:maven-surefire-plugin) package=libsurefire-java ;;
            org.apache.maven.plugins:maven-*-plugin) package="lib${artifact}-java" ;;
            *) package="the one that ships $repo/${group//.//}/$artifact (apt-file search $repo/${group//.//}/$artifact)" ;;
        esac
        echo "clients/java/test.sh: $coordinate is not in $repo: install $package" >&2
    fi
fi
exit "$status"
