# envkit as a container image: every command, built from Debian's packages in one stage and
# shipped in a slim one as a non-root user.
#   docker build -t envkit:0.1.0 .
#   docker run --rm envkit:0.1.0 sensor-push --source sim --count 3 --to -
# The runtime stage installs the .deb the build stage made, so its libraries are exactly the
# package's Depends, which dpkg-shlibdeps computed from what the commands link
# (tests/bats/packaging.bats checks that against ldd).

FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config file dpkg-dev \
      libboost-program-options-dev libcurl4-openssl-dev default-libmysqlclient-dev \
      libmongoc-dev libbson-dev libhiredis-dev libyaml-cpp-dev librabbitmq-dev librdkafka-dev \
      libssl-dev zlib1g-dev libzstd-dev libicu-dev libmicrohttpd-dev rapidjson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DENVKIT_TESTS=OFF \
 && ninja -C build \
 && cd build && cpack -G DEB

FROM debian:bookworm-slim
COPY --from=build /src/build/envkit_*.deb /tmp/
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata /tmp/envkit_*.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/envkit_*.deb \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/envkit --create-home \
      --shell /usr/sbin/nologin envkit \
 && install -d -o envkit -g envkit -m 0750 /var/spool/envkit /var/backups/envkit
# Named volumes mounted on these start out owned by envkit.
VOLUME ["/var/spool/envkit", "/var/backups/envkit", "/var/lib/envkit"]
USER envkit
WORKDIR /var/lib/envkit
CMD ["sensor-push", "--help"]
