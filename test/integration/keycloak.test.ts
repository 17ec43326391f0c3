import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import KcAdminClient from "@keycloak/keycloak-admin-client";
import { proxyDispatcher } from "../../infra/adapters/proxy-dispatcher";
import { proxyUrl } from "../support/bed";
import { viaProxy } from "../support/http";
import { SharedKeycloak, sharedKeycloak } from "../support/shared-keycloak";

describe("the real Keycloak behind the real Traefik", () => {
  let keycloak: SharedKeycloak;

  before(async () => {
    keycloak = await sharedKeycloak();
  });

  it("answers /realms/master through the proxy, with an issuer on its own domain", async () => {
    const realm = await viaProxy(keycloak.domain, "/realms/master");
    assert.equal(realm.status, 200);
    assert.equal((JSON.parse(realm.body) as { realm: string }).realm, "master");
    const discovery = await viaProxy(keycloak.domain, "/realms/master/.well-known/openid-configuration");
    assert.equal((JSON.parse(discovery.body) as { issuer: string }).issuer, `http://${keycloak.domain}/realms/master`);
  });

  it("gives an admin token for the bootstrap admin, and refuses a wrong password", async () => {
    const requestOptions = { dispatcher: proxyDispatcher(proxyUrl()) } as RequestInit;
    const admin = new KcAdminClient({ baseUrl: `http://${keycloak.domain}`, realmName: "master", requestOptions });
    await admin.auth({ grantType: "password", clientId: "admin-cli", username: keycloak.adminUser, password: keycloak.adminPassword });
    const master = await admin.realms.findOne({ realm: "master" });
    assert.equal(master?.realm, "master");

    const intruder = new KcAdminClient({ baseUrl: `http://${keycloak.domain}`, realmName: "master", requestOptions });
    await assert.rejects(
      intruder.auth({ grantType: "password", clientId: "admin-cli", username: keycloak.adminUser, password: "wrong-password" }),
      /401|invalid_grant|Invalid user credentials/i,
    );
  });
});
