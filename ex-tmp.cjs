const { execa } = require("execa");
(async () => {
  const t = Date.now();
  const r = await execa("bash", ["-c", "sleep 41.7 & wait"], { timeout: 2000, forceKillAfterDelay: 5000, all: true, reject: false, stdin: "ignore" });
  console.log(Date.now() - t, r.timedOut, r.exitCode, r.signal);
})();
