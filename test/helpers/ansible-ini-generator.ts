// Random INI inventories (seeded) in the shapes ini.py has to decide: sections of hosts,
// children and vars in any order, children declared before or never, a group's vars
// before the group, hosts in several groups, ranges, host:port, Python-literal values,
// ansible_host / ansible_ssh_host / distrun_port / ansible_group_priority. Compared with
// ansible-core by test/ansible-sources-differential.test.ts, so that it finds the next
// disagreement by itself.

const GROUPS = ['web', 'db', 'app', 'prod', 'all', 'ungrouped', 'x-y', '10', 'h2'];
const HOSTS = ['h1', 'h2', 'h3', 'web[1:3]', 'n-[a:c]', 'h1:2222', '10.0.0.[1:2]', '[2001:db8::1]:22', 'h4:0', 'db[01:02]'];
const VALUES = ['10.1.0.1', "'10.1.0.2'", '"10.1.0.3"', 'name.lan', '7001', '"7002"', '0x1b5b', '070', '7_004', 'None', '', '[1]', 'True'];
const KEYS = ['ansible_host', 'ansible_ssh_host', 'distrun_port', 'other'];

export function randomIni(rand: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const lines: string[] = [];
  const sections = 2 + Math.floor(rand() * 7);
  // Sections name a few groups; children mostly among them (an undefined one is an error).
  const declared = GROUPS.filter(() => rand() < 0.5);
  if (declared.length === 0) declared.push('web');
  // Lines before any section belong to ungrouped.
  for (let i = Math.floor(rand() * 2); i > 0; i--) lines.push(hostLine(pick, rand));
  for (let s = 0; s < sections; s++) {
    const group = pick(declared);
    const kind = pick(['', '', ':children', ':vars']);
    lines.push(`[${group}${kind}]${rand() < 0.2 ? '  # comment' : ''}`);
    for (let i = Math.floor(rand() * 4); i > 0; i--) {
      if (kind === ':children')
        lines.push(rand() < 0.1 ? pick(GROUPS) : pick(declared.filter((g) => g !== group && g !== 'all').concat(['ungrouped'])));
      else if (kind === ':vars') {
        const key = rand() < 0.2 ? 'ansible_group_priority' : pick(KEYS);
        lines.push(
          `${key}${pick(['=', ' = '])}${key === 'ansible_group_priority' ? pick(['1', '5', '10']) : pick(VALUES)}${rand() < 0.2 ? ' # c' : ''}`,
        );
      } else lines.push(hostLine(pick, rand));
    }
    if (rand() < 0.3) lines.push(pick(['', '; a comment', '# another']));
  }
  return `${lines.join('\n')}\n`;
}

function hostLine(pick: <T>(items: readonly T[]) => T, rand: () => number): string {
  const words = [pick(HOSTS)];
  for (let i = Math.floor(rand() * 3); i > 0; i--) words.push(`${pick(KEYS)}=${pick(VALUES)}`);
  return words.join(' ');
}
