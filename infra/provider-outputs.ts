/** Dynamic-provider outputs without undefined values: the engine's struct encoding refuses them. */
export function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as T;
}
