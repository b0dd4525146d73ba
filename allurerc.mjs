// Allure Report 3 configuration: the sign-off report of the suites on every target.
// `python3 -m harness.report.allure` runs it (.ci/report); PJ_REPORTS names the reports
// directory (default reports/): results in allure-results/, the report in html/, the
// history of every run in history.jsonl.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { qualityGateDefaultRules } from "allure/rules";

const reports = process.env.PJ_REPORTS ?? "reports";
const results = join(reports, "allure-results");

// One environment per target, matched on the label every result carries (harness/report/allure.py).
const TARGETS = { mock: "mock", netns: "netns lab", lab: "lab DUT" };
const onTarget = (target) => ({ labels }) => labels.some((l) => l.name === "target" && l.value === target);

// environment-<target>[-<station>].json, written beside the results by the run on that target;
// a lab of several stations shows each station's values under its name.
const environmentFiles = () => {
  let names = [];
  try {
    names = readdirSync(results).filter((name) => /^environment-.+\.json$/.test(name)).sort();
  } catch (error) {
    if (error.code !== "ENOENT") throw error;
  }
  return names.map((name) => JSON.parse(readFileSync(join(results, name), "utf8")));
};
const variablesOf = (target, files) => {
  const mine = files.filter((file) => file.target === target);
  const variables = {};
  for (const { target: _, station, ...values } of mine) {
    for (const [key, value] of Object.entries(values)) {
      variables[mine.length > 1 && station ? `${station}: ${key}` : key] = String(value);
    }
  }
  return variables;
};
const files = environmentFiles();
const environments = Object.fromEntries(
  Object.entries(TARGETS).map(([target, name]) => [
    target,
    { name, variables: variablesOf(target, files), matcher: onTarget(target) },
  ]),
);

// Disagreements between targets that sign-off does not accept: a skip (a capability the target
// lacks) and an xfail (a divergence of the mock written down in the suite) are accepted.
const ACCEPTED_DISAGREEMENTS = ["skipped on some targets", "known divergence (xfail on some targets)"];
const disagreementOf = (tr) => tr.labels.find((l) => l.name === "disagreement")?.value;
const maxDisagreementsRule = {
  rule: "maxDisagreements",
  message: ({ actual, expected }) =>
    `${actual} results of tests whose outcome differs between targets, more than ${expected}`,
  successMessage: ({ actual, expected }) =>
    `${actual} results of tests whose outcome differs between targets (at most ${expected})`,
  validate: async ({ trs, expected }) => {
    const disagreeing = trs.filter((tr) => {
      const kind = disagreementOf(tr);
      return kind !== undefined && !ACCEPTED_DISAGREEMENTS.includes(kind);
    });
    return { success: disagreeing.length <= expected, actual: disagreeing.length, testResults: disagreeing.map((tr) => tr.id) };
  },
};

export default {
  name: "packet-journey sign-off",
  output: join(reports, "html"),
  resultsDir: results,
  historyPath: join(reports, "history.jsonl"),
  hideLabels: ["ALLURE_ID"], // the pytest node id again (harness/report/allure.py), as label "case"
  environments,
  // The first category a result matches is its only one: disagreements come first.
  categories: [
    {
      id: "disagreements",
      name: "Disagreements between targets",
      matchers: { labels: { disagreement: /./ } },
      groupBy: [{ label: "disagreement" }, { label: "case" }, "environment"],
      groupByMessage: false,
      groupEnvironments: false,
      expand: true,
    },
    {
      id: "infrastructure",
      name: "Infrastructure (target unavailable, lab unreachable, tool missing)",
      matchers: [
        { statuses: ["failed", "broken"], trace: /\b(TargetUnavailable|StationBroken|RemoteError|TrexError|ToolchainMissing)\b/ },
        { statuses: ["broken"], message: /FileNotFoundError.*No such file or directory/ },
        { statuses: ["skipped"], message: /target \S+ unavailable/ },
      ],
    },
    {
      id: "product",
      name: "Product defects (the DUT did something else)",
      matchers: { statuses: ["failed"] },
    },
    {
      id: "harness",
      name: "Harness defects (an exception in the harness)",
      matchers: { statuses: ["broken"] },
    },
  ],
  // Sign-off: nothing failed or broken on any target, every target ran, and no disagreement
  // between targets beyond the accepted ones.
  qualityGate: {
    use: [...qualityGateDefaultRules, maxDisagreementsRule],
    rules: [
      ...Object.keys(TARGETS).map((target) => ({ id: target, filter: onTarget(target), maxFailures: 0 })),
      { id: "targets", environmentsTested: Object.values(TARGETS) },
      { id: "targets", maxDisagreements: 0 },
    ],
  },
  plugins: {
    awesome: {
      options: {
        singleFile: true,
        reportName: "packet-journey sign-off",
        groupBy: ["epic", "feature", "story"],
      },
    },
  },
};
