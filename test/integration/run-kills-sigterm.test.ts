import { describeRunKills } from "../support/run-kills";

// SIGTERM of a quick run's runner at each phase: it cleans up itself (test/support/run-kills.ts).
describeRunKills("SIGTERM");
