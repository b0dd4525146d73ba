// `allure generate` with the sign-off quality gate in the report: reads allurerc.mjs from the
// working directory and the results it names, validates the quality gate over every result,
// hands its results to the report (the "Quality Gates" tab) as `allure log` does, writes the
// report and the history, and prints one JSON line per quality gate rule.
import { AllureReport, readConfig } from "@allurereport/core";

// Allure 3.18's quality gate calls Iterator.prototype.toArray() (ES2025, Node 22); Debian's
// Node 20 lacks it: the standard method, for iterators that lack it.
const iteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([].values()));
iteratorPrototype.toArray ??= function toArray() {
  return [...this];
};

const config = await readConfig(process.cwd());
const report = new AllureReport(config);
await report.start();
for (const directory of config.resultsDir) {
  await report.readDirectory(directory);
}
const trs = await report.store.allTestResults({ includeRetries: false });
const { results } = await report.validate({ trs });
report.realtimeDispatcher.sendQualityGateResults(results);
await report.done();
for (const { rule, success, message } of results) {
  console.log(JSON.stringify({ rule, success, message }));
}
