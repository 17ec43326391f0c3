import * as net from "node:net";
import { Agent } from "undici";

/**
 * An HTTP dispatcher that sends every connection to the proxy's web entrypoint on loopback while
 * the request keeps its real URL and Host (e.g. http://kc.warm.test/realms/x). Keycloak derives a
 * realm's issuer from the host it is called by, so host-side clients must call apps by the same
 * domain as containers do; fetch() itself cannot override Host.
 */
export function proxyDispatcher(proxyUrl: string): Agent {
  const target = new URL(proxyUrl);
  if (!/^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost)$/.test(target.hostname)) {
    throw new Error(`proxy URL ${proxyUrl}: the proxy must be on loopback`);
  }
  const port = Number(target.port || 80);
  return new Agent({
    connect: (_options, callback) => {
      const socket = net.connect({ host: target.hostname, port });
      socket.once("connect", () => callback(null, socket));
      socket.once("error", (error) => callback(error, null));
      return socket;
    },
  });
}
