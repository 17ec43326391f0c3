FROM warmstack/base:bookworm
COPY traefik /usr/local/bin/traefik
ENTRYPOINT ["/usr/local/bin/traefik"]
