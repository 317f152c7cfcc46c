// The Node unleash-client SDK evaluating flags offline, for the flags
// benchmark: its own UnleashClient class over an in-memory repository (no
// server, no network).  Modes:
//   bench STATE.json N      time N isEnabled calls, contexts built per call
//   diff  STATE.json CASES  CASES: one JSON line {key, ctx, enabled, variant}
//                           per case (aura's answers); prints disagreements
const fs = require('fs');
const UnleashClient = require('unleash-client/lib/client').default;
const { defaultStrategies } = require('unleash-client/lib/strategy');

const [mode, stateFile, arg] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
const toggles = new Map(state.features.map((f) => [f.name, f]));
const segments = new Map((state.segments || []).map((s) => [s.id, s]));
const repo = {
  getToggle: (n) => toggles.get(n),
  getToggles: () => state.features,
  getSegment: (id) => segments.get(id),
};
const client = new UnleashClient(repo, defaultStrategies);

if (mode === 'bench') {
  const n = Number(arg);
  const key = 'bench.flag';
  let on = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 1; i <= n; i++) {
    const ctx = { userId: String(i), appName: 'web', properties: { tier: 'gold' } };
    if (client.isEnabled(key, ctx, () => false)) on++;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  const cpuSecs = (cpu.user + cpu.system) / 1e6;
  console.log(JSON.stringify({ evaluations: n, seconds: secs, cpu_seconds: cpuSecs, on }));
} else if (mode === 'diff') {
  let checked = 0;
  let mismatches = 0;
  const examples = [];
  for (const line of fs.readFileSync(arg, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    const enabled = client.isEnabled(c.key, c.ctx, () => false);
    const variant = client.getVariant(c.key, c.ctx).name;
    checked++;
    if (enabled !== c.enabled || variant !== c.variant) {
      mismatches++;
      if (examples.length < 5) examples.push({ ...c, node_enabled: enabled, node_variant: variant });
    }
  }
  console.log(JSON.stringify({ checked, mismatches, examples }));
}
