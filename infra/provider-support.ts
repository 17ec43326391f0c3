import type * as pulumi from "@pulumi/pulumi";

/** Dynamic-provider outputs without undefined values: the engine's struct encoding refuses them. */
export function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as T;
}

/** Collects a resource's input check failures, each naming its property, instead of failing on the first. */
export function inputChecker() {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const check = (property: string, test: () => unknown) => {
    try {
      test();
    } catch (error) {
      failures.push({ property, reason: (error as Error).message });
    }
  };
  return { check, failures };
}
