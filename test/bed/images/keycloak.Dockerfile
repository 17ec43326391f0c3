FROM warmstack/jre:17
ARG KEYCLOAK_VERSION
ADD keycloak-quarkus-dist-${KEYCLOAK_VERSION}.tar.gz /opt/
RUN mv /opt/keycloak-${KEYCLOAK_VERSION} /opt/keycloak \
 && /opt/keycloak/bin/kc.sh build --db=dev-file --health-enabled=true
ENV KC_HTTP_ENABLED=true KC_HOSTNAME_STRICT=false
EXPOSE 8080 9000
ENTRYPOINT ["/opt/keycloak/bin/kc.sh"]
CMD ["start", "--optimized"]
