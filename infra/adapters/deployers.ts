import { Deployer } from "./deployer";
import { StackDeployer } from "./stack-deployer";

/** Where and how apps are deployed; plain data, so it can travel in resource inputs. */
export interface DeployerSettings {
  deployer: "stack";
  abraDir: string;
  server: string;
  proxyUrl: string;
  dnsrrEndpoints: boolean;
}

export function createDeployer(settings: DeployerSettings): Deployer {
  return new StackDeployer({
    abraDir: settings.abraDir,
    server: settings.server,
    proxyUrl: settings.proxyUrl,
    dnsrrEndpoints: settings.dnsrrEndpoints,
  });
}
