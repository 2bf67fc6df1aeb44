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

describe('a resource in another Region: every command names the Region, the action and the resource', () => {
  it('list, backup, points, estimate, doctor and restore say where they looked, and a mistyped Region gets a suggestion', async () => {
    await withEmulator({}, async (em, dir) => {
      // The instance and the subnet live in eu-west-1; the config asks us-east-1.
      const { instanceId } = await em.admin.instance({
        region: 'eu-west-1',
        availabilityZone: 'eu-west-1a',
        volumes: [{ sizeGiB: 1 }],
      });
      const config = writeConfig(dir.path, em, `[backup]\ninstance-ids = ${instanceId}\n`, 'away');
      const missing = new RegExp(
        `EC2 DescribeInstances in us-east-1 failed: InvalidInstanceID\\.NotFound: .*${instanceId}.*; it does not exist in us-east-1: if it is in another Region, set \\[aws\\] region`,
      );
      const list = await cli(['list', `--config=${config}`, '--job=j1', '--level=Full']);
      expect(list.code).toBe(1);
      expect(list.stdout.toString()).toMatch(missing);
      for (const command of [['backup', '--job=j1'], ['points'], ['estimate']]) {
        const result = await cli([command[0]!, `--config=${config}`, ...command.slice(1)], {
          stdoutFile: join(dir.path, 'out'),
        });
        expect(result.code, command[0]).toBe(1);
        expect(result.stderr, command[0]).toMatch(missing);
      }
      const doctor = await cli(['doctor', `--config=${config}`]);
      expect(doctor.code).toBe(1);
      expect(doctor.stdout.toString()).toMatch(
        new RegExp(`${instanceId}.*us-east-1|us-east-1.*${instanceId}`),
      );

      // A restore to us-east-1 into a subnet of eu-west-1.
      const here = await em.admin.instance({ volumes: [{ sizeGiB: 1, fill: { blocks: 1, seed: 3 } }] });
      const home = writeConfig(dir.path, em, `[backup]\ninstance-ids = ${here.instanceId}\n`, 'home');
      const tar = join(dir.path, 'home.tar');
      expect((await cli(['backup', `--config=${home}`, '--job=h1'], { stdoutFile: tar })).code).toBe(0);
      const { SubnetId: subnetId } = await em.admin.call<{ SubnetId: string }>('POST', 'subnets', {
        region: 'eu-west-1',
        availabilityZone: 'eu-west-1a',
      });
      const restore = await cli(['restore', `--config=${home}`, '--dry-run', `--subnet-id=${subnetId}`, tar]);
      expect(restore.code).not.toBe(0);
      expect(restore.stderr).toMatch(new RegExp(`${subnetId}.*us-east-1|us-east-1.*${subnetId}`));

      // A Region the SDK does not know, close to one it does.
      const typo = await cli(['points', `--config=${config}`, '--region=us-est-1']);
      expect(typo.code).toBe(1);
      expect(typo.stderr).toMatch(
        /in us-est-1 failed: .*us-est-1 is not a Region the AWS SDK knows\. Did you mean "us-east-1"\?/,
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
        /^error: EC2 DescribeVolumes in eu-west-1 failed: InvalidVolume\.NotFound: The volume 'vol-0123456789abcdef0' does not exist\. \(credentials: the access key AKIA…KEY1 of \[aws\] access-key-id\); it does not exist in eu-west-1: if it is in another Region, set \[aws\] region \(or --region\)$/m,
      );
      const none = await cli(['estimate', `--config=${config}`, '--volume=vol-0123456789abcdef0'], { env });
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(
        /No AWS region: set \[aws\] region in the config, pass --region, set AWS_REGION, or give the profile in use a region/,
      );
    });
  });
});
