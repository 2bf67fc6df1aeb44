import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../../helpers.js';
import { baculaAvailable, makeCatalog } from './harness.js';

/**
 * The README's "Set up with Bacula" resources, as a Bacula administrator pastes them: the real
 * Director parses them (`bacula-dir -t`) beside the resources they name, with its catalog made.
 */
describe.skipIf(!baculaAvailable())("the README's Bacula setup", () => {
  it('is a configuration the Director accepts, and a misspelt keyword in it is not', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('FileSet { Name = "ec2-web"');
    expect(start).toBeGreaterThan(0);
    const resources = readme.slice(start, readme.indexOf('```', start));
    const work = tempDir('ec2-bpipe-readme-dir-');
    try {
      // The resources the snippet refers to, as any Director has them.
      const base = `Director { Name = t-dir; QueryFile = "/etc/bacula/scripts/query.sql"; WorkingDirectory = "${work.path}"; PidDirectory = "${work.path}"; Password = "d"; Messages = Standard }
Catalog { Name = MyCatalog; dbname = "bacula"; dbuser = ""; dbpassword = "" }
Client { Name = backup-host-fd; Address = 127.0.0.1; Catalog = MyCatalog; Password = "c" }
Storage { Name = File1; Address = 127.0.0.1; Password = "s"; Device = FileDev; Media Type = File }
Pool { Name = File; Pool Type = Backup }
Messages { Name = Standard; console = all }
`;
      makeCatalog(work.path);
      const check = (text: string) => {
        const conf = join(work.path, 'bacula-dir.conf');
        writeFileSync(conf, base + text);
        return spawnSync('/usr/sbin/bacula-dir', ['-t', '-c', conf], { encoding: 'utf8' });
      };
      const good = check(resources);
      expect(good.status, good.stdout + good.stderr).toBe(0);
      const bad = check(resources.replace('Accurate = no', 'Acurate = no'));
      expect(bad.stdout + bad.stderr).toMatch(/Keyword "Acurate" not permitted/);
    } finally {
      work.cleanup();
    }
  });
});
