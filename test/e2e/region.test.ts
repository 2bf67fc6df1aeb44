/** The region comes from the SDK's own lookup when the config names none: environment, then the profile. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, credentials, withEmulator, writeConfig } from '../helpers.js';

describe('AWS errors name what failed', () => {
  it('a denied call names the IAM permission that is missing', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 1 } });
      const config = writeConfig(dir.path, em);
      await em.admin.call('POST', 'fail', {
        action: 'CreateSnapshot',
        code: 'UnauthorizedOperation',
        message: 'You are not authorized to perform this operation.',
        count: 1,
      });
      const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=j1'], {
        stdoutFile: join(dir.path, 'j1.tar'),
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /EC2 CreateSnapshot in us-east-1 failed: UnauthorizedOperation: You are not authorized to perform this operation\. \(credentials: .*\); the credentials lack the IAM permission ec2:CreateSnapshot/,
      );
    });
  });
});

describe('region resolution', () => {
  it('takes the region of the profile in use (AWS_PROFILE), and says how to set one when there is none', async () => {
    await withEmulator({}, async (em, dir) => {
      await em.admin.volume({ sizeGiB: 1, region: 'eu-west-1' });
      const home = join(dir.path, 'home');
      mkdirSync(join(home, '.aws'), { recursive: true });
      writeFileSync(join(home, '.aws', 'config'), '[profile bk]\nregion = eu-west-1\n');
      const config = join(dir.path, 'noregion.ini');
      writeFileSync(
        config,
        `[aws]\nendpoint-url = ${em.url}\naccess-key-id = ${credentials.accessKeyId}\nsecret-access-key = ${credentials.secretAccessKey}\n` +
          `[backup]\nvolume-tags = \n[bacula]\nstate-dir = ${dir.path}\nallow-empty = yes\n`,
        { mode: 0o600 },
      );
      // Undefined removes a variable from the child's environment, whatever the runner's holds.
      const env = {
        HOME: home,
        AWS_CONFIG_FILE: join(home, '.aws', 'config'),
        AWS_REGION: undefined,
        AWS_DEFAULT_REGION: undefined,
        AWS_PROFILE: undefined,
      };
      const withProfile = await cli(['estimate', `--config=${config}`, '--volume=vol-0123456789abcdef0'], {
        env: { ...env, AWS_PROFILE: 'bk' },
      });
      // The estimate reaches eu-west-1, where that volume does not exist: the region was found.
      expect(withProfile.stderr).not.toMatch(/No AWS region/);
      // AWS's own error, with the service, action, region and credentials it needs to be acted on.
      expect(withProfile.stderr).toMatch(
        /^error: EC2 DescribeVolumes in eu-west-1 failed: InvalidVolume\.NotFound: The volume 'vol-0123456789abcdef0' does not exist\. \(credentials: the access key AKIA…KEY1 of \[aws\] access-key-id\)$/m,
      );
      const none = await cli(['estimate', `--config=${config}`, '--volume=vol-0123456789abcdef0'], { env });
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(
        /No AWS region: set \[aws\] region in the config, pass --region, set AWS_REGION, or give the profile in use a region/,
      );
    });
  });
});
