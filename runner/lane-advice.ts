/**
 * The quick lane pays for its data: a deploy of the known-good on the canonical's volumes, the
 * upgrade to the PR head, and the put-back. On an app whose first boot costs nothing that is slower
 * than a cold run, and an operator should hear it from the run rather than from a benchmark.
 */
export interface LaneSample {
  lane: "cold" | "quick";
  durationMs: number;
}

/** How many of a recipe's latest green runs of each lane are looked at. */
export const ADVICE_WINDOW = 5;
/** Quick may be this much slower than cold before the run says so: run times vary that much anyway. */
const TOLERANCE = 1.1;

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * A line for a quick run's report when the recipe's green quick runs have taken longer than its green
 * cold runs by more than 10% (medians of the latest ADVICE_WINDOW of each, newest first in
 * `samples`); undefined while either lane has no green run, or when quick is not the slower one.
 */
export function laneAdvice(recipe: string, samples: readonly LaneSample[]): string | undefined {
  const latest = (lane: LaneSample["lane"]) => samples.filter((sample) => sample.lane === lane).slice(0, ADVICE_WINDOW).map((sample) => sample.durationMs);
  const cold = latest("cold");
  const quick = latest("quick");
  if (cold.length === 0 || quick.length === 0) return undefined;
  const coldMedian = medianOf(cold);
  const quickMedian = medianOf(quick);
  if (quickMedian <= coldMedian * TOLERANCE) return undefined;
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return (
    `the cold lane is the faster one for ${recipe}: its green cold runs took ${seconds(coldMedian)} (median of ${cold.length}), ` +
    `its green quick runs ${seconds(quickMedian)} (median of ${quick.length}); a cold run is also authoritative`
  );
}
