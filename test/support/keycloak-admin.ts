import KcAdminClient from "@keycloak/keycloak-admin-client";
import { proxyDispatcher } from "../../infra/adapters/proxy-dispatcher";
import { proxyUrl } from "./bed";

/** An admin session on a Keycloak reached through the bed's proxy under its own domain. */
export async function keycloakAdmin(domain: string, password: string): Promise<KcAdminClient> {
  const client = new KcAdminClient({
    baseUrl: `http://${domain}`,
    realmName: "master",
    requestOptions: { dispatcher: proxyDispatcher(proxyUrl()) } as RequestInit,
  });
  await client.auth({ grantType: "password", clientId: "admin-cli", username: "admin", password });
  return client;
}

export async function realmExists(client: KcAdminClient, realm: string): Promise<boolean> {
  // findOne answers null for a realm that is not there.
  const found = await client.realms.findOne({ realm });
  return found !== undefined && found !== null;
}
