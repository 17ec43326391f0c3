import { describeRunKills } from "../support/run-kills";

// SIGKILL of a quick run's runner at each phase, then `warmstack reap` (test/support/run-kills.ts).
describeRunKills("SIGKILL");
