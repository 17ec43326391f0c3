FROM warmstack/base:bookworm
COPY fixture-app /usr/local/bin/fixture-app
VOLUME /data
ENTRYPOINT ["/usr/local/bin/fixture-app"]
