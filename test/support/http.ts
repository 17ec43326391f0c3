import * as http from "node:http";
import { bed } from "./bed";

export interface Reply {
  status: number;
  body: string;
}

/** One request to an app through the bed's proxy on loopback, addressed by the app's domain. */
export function viaProxy(domain: string, path: string, method = "GET", body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: "127.0.0.1", port: bed().proxyPort, path, method, headers: { Host: domain }, timeout: 10_000 },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      },
    );
    request.on("timeout", () => request.destroy(new Error(`${method} ${domain}${path}: no answer within 10s`)));
    request.on("error", reject);
    request.end(body);
  });
}
