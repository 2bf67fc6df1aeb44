/**
 * A disaster restore that works the first time: everything RunInstances would refuse is refused
 * before the first block, options that cannot apply are refused, and what the instance was (its
 * network identity, attributes, CPU options, instance profile) comes back, or the plan and the
 * log say what was adapted or lost.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AdminRecord } from '../helpers.js';
import { cli, withEmulator, writeConfig } from '../helpers.js';

type Em = Parameters<Parameters<typeof withEmulator>[1]>[0];

const PROFILE = 'arn:aws:iam::123456789012:instance-profile/app-server';

async function backedUp(
  em: Em,
  dir: { path: string },
  spec: Record<string, unknown>,
  job = 'j1',
): Promise<{ config: string; file: string; instanceId: string }> {
  const source = await em.admin.instance(spec);
  const config = writeConfig(dir.path, em);
  const file = join(dir.path, `${job}.tar`);
  const backup = await cli(
    ['backup', `--config=${config}`, `--instance=${source.instanceId}`, `--job=${job}`],
    {
      stdoutFile: file,
    },
  );
  expect(backup.code, backup.stderr).toBe(0);
  return { config, file, instanceId: source.instanceId };
}

/** What a refused restore must leave as it found it. */
async function counts(em: Em): Promise<number[]> {
  const state = await em.admin.state();
  return [state.snapshots.length, state.images.length, state.instances.length, state.volumes.length];
}

describe('a restore refuses before the first block what the launch would refuse', () => {
  it('each late failure exits 2, in --dry-run and in a real restore, with nothing created', async () => {
    await withEmulator({}, async (em, dir) => {
      await em.admin.call('POST', 'placement-groups', {
        region: 'us-east-1',
        groupName: 'three',
        strategy: 'partition',
        partitionCount: 3,
      });
      const zoneA = { AvailabilityZone: 'us-east-1a', AvailabilityZoneId: 'use1-az1', Tenancy: 'default' };
      const cases: [string, Record<string, unknown>, string[], RegExp][] = [
        [
          'a stored key pair that is gone',
          { attributes: { KeyName: 'retired-key' } },
          [],
          /key pair retired-key \(stored with i-[0-9a-f]+\) does not exist in us-east-1/,
        ],
        [
          'a stored security group that is gone',
          { securityGroupIds: ['sg-00000000000dead00'] },
          [],
          /security groups sg-00000000000dead00 \(stored with i-[0-9a-f]+\): not all exist in us-east-1/,
        ],
        [
          'a stored placement group that is gone',
          { attributes: { Placement: { ...zoneA, GroupName: 'gone' } } },
          [],
          /placement group gone \(stored with i-[0-9a-f]+\) does not exist in us-east-1/,
        ],
        [
          'a partition the group does not have',
          {},
          ['--placement-group=three', '--partition-number=5'],
          /partition 5 \(--partition-number\) does not exist in placement group three, which has 3 partitions/,
        ],
        [
          'an instance profile of another account',
          {
            attributes: {
              IamInstanceProfile: { Arn: 'arn:aws:iam::999999999999:instance-profile/app', Id: 'AIPAX' },
            },
          },
          [],
          /instance profile arn:aws:iam::999999999999:instance-profile\/app \(stored with i-[0-9a-f]+\) belongs to account 999999999999, and this restore runs in account 123456789012/,
        ],
        [
          'an instance profile that does not exist',
          {},
          ['--iam-instance-profile=nobody'],
          /instance profile nobody \(--iam-instance-profile\) does not exist in this account/,
        ],
        [
          'an ENA-only type for a source without ENA',
          { instanceType: 't2.micro' },
          ['--instance-type=m5.large'],
          /instance type m5\.large \(--instance-type\) requires ENA, and i-[0-9a-f]+ ran without it.*--ena-support/,
        ],
        [
          'a type the zone does not offer',
          { instanceType: 'c5.large' },
          [],
          /instance type c5\.large \(stored with i-[0-9a-f]+\) is not offered in us-east-1a .*give a --subnet-id in us-east-1b, us-east-1c/,
        ],
        [
          'a zone that does not exist for the volumes of an instance stream',
          {},
          ['--volume=FIRST', '--create-volume', '--availability-zone=us-east-1z'],
          /availability zone us-east-1z \(--availability-zone\) does not exist in us-east-1/,
        ],
        [
          '--availability-zone for an instance that is launched',
          {},
          ['--availability-zone=us-east-1b'],
          /--availability-zone cannot apply to .*an instance stream.*: an instance lands in the zone of its subnet; choose the zone with --subnet-id/,
        ],
      ];
      await em.admin.call('POST', 'offerings', {
        region: 'us-east-1',
        availabilityZone: 'us-east-1a',
        instanceType: 'c5.large',
        offered: false,
      });
      for (const [what, spec, args, refusal] of cases) {
        const { config, file } = await backedUp(em, dir, {
          volumes: [{ sizeGiB: 1, fill: { blocks: 3, seed: 1 } }],
          ...spec,
        });
        const volumeId = (await em.admin.state()).volumes.at(-1)?.VolumeId as string;
        const given = args.map((a) => a.replace('FIRST', volumeId));
        const before = await counts(em);
        for (const dryRun of [['--dry-run'], []]) {
          const result = await cli(['restore', `--config=${config}`, ...dryRun, ...given, file]);
          expect(result.code, `${what} ${dryRun.join('')}: ${result.stderr}`).toBe(2);
          expect(result.stderr, what).toMatch(refusal);
          expect(await counts(em), what).toEqual(before);
        }
      }
    });
  });
});

describe('what Bacula and a cross-Region restore are told early', () => {
  it("a data writer (--no-launch) says at once that restore.json's launch would be refused", async () => {
    await withEmulator({}, async (em, dir) => {
      const { config, file } = await backedUp(em, dir, {
        attributes: { KeyName: 'retired-key' },
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 9 } }],
      });
      const writer = await cli([
        'restore',
        `--config=${config}`,
        '--where=',
        '--replace=a',
        '--no-launch',
        '--skip-incomplete',
        file,
      ]);
      expect(writer.code, writer.stderr).toBe(0);
      expect(writer.stderr).toMatch(
        /a launch from these snapshots \(restore\.json, or a restore without --no-launch\) would be refused: key pair retired-key \(stored with i-[0-9a-f]+\) does not exist/,
      );
    });
  });

  it('a cross-Region plan names the stored key pair and placement group it cannot take', async () => {
    await withEmulator({}, async (em, dir) => {
      await em.admin.call('POST', 'placement-groups', {
        region: 'us-east-1',
        groupName: 'spread',
        strategy: 'spread',
      });
      const { config, file } = await backedUp(em, dir, {
        keyName: 'ops',
        attributes: {
          Placement: {
            AvailabilityZone: 'us-east-1a',
            AvailabilityZoneId: 'use1-az1',
            GroupName: 'spread',
            Tenancy: 'default',
          },
        },
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 10 } }],
      });
      const subnet = await em.admin.call<{ SubnetId: string; VpcId: string }>('POST', 'subnets', {
        region: 'eu-west-1',
        availabilityZone: 'eu-west-1a',
        cidr: '10.0.7.0/24',
      });
      const group = await em.admin.call<{ GroupId: string }>('POST', 'security-groups', {
        region: 'eu-west-1',
        vpcId: subnet.VpcId,
        groupName: 'dr',
      });
      const plan = await cli([
        'restore',
        `--config=${config}`,
        '--dry-run',
        '--region=eu-west-1',
        `--subnet-id=${subnet.SubnetId}`,
        `--security-group-ids=${group.GroupId}`,
        file,
      ]);
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout.toString()).toMatch(
        /lost: key pair ops \(a key pair of us-east-1; give one of eu-west-1 with --key-name\)/,
      );
      expect(plan.stdout.toString()).toMatch(
        /lost: placement group spread \(a group of us-east-1; give one of eu-west-1 with --placement-group\)/,
      );
    });
  });
});

describe('what the instance was comes back', () => {
  it('interfaces, addresses, Elastic IP, source/dest check, termination protection, shutdown, SMT off and profile', async () => {
    await withEmulator({}, async (em, dir) => {
      const { config, file, instanceId } = await backedUp(em, dir, {
        instanceType: 'm5.large',
        privateIp: '10.0.0.50',
        secondaryPrivateIps: 1,
        sourceDestCheck: false,
        elasticIp: true,
        interfaces: [{ privateIp: '10.0.0.60', deleteOnTermination: true }],
        disableApiTermination: true,
        shutdownBehavior: 'terminate',
        attributes: {
          CpuOptions: { CoreCount: 1, ThreadsPerCore: 1 },
          IamInstanceProfile: { Arn: PROFILE, Id: 'AIPA1' },
        },
        volumes: [
          { sizeGiB: 1, fill: { blocks: 4, seed: 2 } },
          { sizeGiB: 1, fill: { blocks: 2, seed: 3 } },
        ],
      });
      const source = (await em.admin.state()).instances.find(
        (i) => i.InstanceId === instanceId,
      ) as AdminRecord;
      const sourceIps = (source.NetworkInterfaces as AdminRecord[]).map((n) =>
        (n.PrivateIpAddresses as AdminRecord[]).map((a) => a.PrivateIpAddress),
      );
      expect(sourceIps[0]?.[0]).toBe('10.0.0.50');
      const publicIp = source.PublicIpAddress as string;

      // While the source runs, its addresses are taken: --keep-private-ip is refused before any
      // write, and without it the plan says the Elastic IP stays where it is.
      const before = await counts(em);
      const taken = await cli(['restore', `--config=${config}`, '--keep-private-ip', '--dry-run', file]);
      expect(taken.code, taken.stderr).toBe(2);
      expect(taken.stderr).toMatch(
        new RegExp(
          `--keep-private-ip: private address 10\\.0\\.0\\.50 of ${instanceId} is in use in subnet subnet-[0-9a-f]+ by eni-[0-9a-f]+ \\(instance ${instanceId}\\)`,
        ),
      );
      const busy = await cli(['restore', `--config=${config}`, '--dry-run', file]);
      expect(busy.code, busy.stderr).toBe(0);
      expect(busy.stdout.toString()).toMatch(
        new RegExp(
          `lost: Elastic IP ${publicIp.replace(/\./g, '\\.')} on eth0 \\(10\\.0\\.0\\.50\\) \\(still associated with ${instanceId}`,
        ),
      );
      expect(await counts(em)).toEqual(before);

      // The disaster: the source is gone, its addresses free.
      await em.admin.call('POST', `instances/${instanceId}/terminate`, {});
      const restored = await cli(['restore', `--config=${config}`, '--keep-private-ip', file]);
      expect(restored.code, restored.stderr).toBe(0);
      const newId = /^instance (i-[0-9a-f]+) /m.exec(restored.stdout.toString())?.[1];
      const state = await em.admin.state();
      const launched = state.instances.find((i) => i.InstanceId === newId) as AdminRecord;
      const interfaces = launched.NetworkInterfaces as AdminRecord[];
      expect(
        interfaces.map((n) => (n.PrivateIpAddresses as AdminRecord[]).map((a) => a.PrivateIpAddress)),
      ).toEqual(sourceIps);
      expect(interfaces.map((n) => (n.Attachment as AdminRecord).DeviceIndex)).toEqual([0, 1]);
      expect(interfaces[0]?.SourceDestCheck).toBe(false);
      expect(launched.PublicIpAddress).toBe(publicIp);
      expect(launched.DisableApiTermination).toBe(true);
      expect(launched.InstanceInitiatedShutdownBehavior).toBe('terminate');
      expect(launched.CpuOptions).toEqual({ CoreCount: 1, ThreadsPerCore: 1 });
      expect((launched.IamInstanceProfile as AdminRecord).Arn).toBe(PROFILE);
      expect((launched.BlockDeviceMappings as AdminRecord[]).length).toBe(2);

      // Restored again with another type and subnet: each setting adapted or lost is named, in
      // the plan, in its JSON, and in the log of the real restore.
      const otherZone = await em.admin.call<{ SubnetId: string }>('POST', 'subnets', {
        region: 'us-east-1',
        availabilityZone: 'us-east-1b',
        cidr: '10.0.9.0/24',
      });
      const group = (state.instances.find((i) => i.InstanceId === newId)?.SecurityGroups as AdminRecord[])[0]
        ?.GroupId as string;
      const moved = [
        '--instance-type=m5.xlarge',
        `--subnet-id=${otherZone.SubnetId}`,
        `--security-group-ids=${group}`,
      ];
      const plan = await cli(['restore', `--config=${config}`, '--dry-run', ...moved, file]);
      expect(plan.code, plan.stderr).toBe(0);
      const lines = plan.stdout.toString();
      expect(lines).toMatch(/set: instance type m5\.xlarge \(--instance-type\)/);
      expect(lines).toMatch(
        /adapted: CPU options 2 cores x 1 thread \(SMT off kept; 1 cores x 1 threads is not valid for m5\.xlarge/,
      );
      expect(lines).toMatch(
        /adapted: private addresses 10\.0\.0\.50,10\.0\.0\.\d+ on eth0 \(10\.0\.0\.50\) \(new addresses in subnet-/,
      );
      expect(lines).toMatch(
        /lost: network interface eth1 \(10\.0\.0\.60\) \(its subnet subnet-[0-9a-f]+ is in us-east-1a, not in us-east-1b/,
      );
      expect(lines).toMatch(new RegExp(`lost: Elastic IP .* \\(still associated with ${newId}`));
      expect(lines).toMatch(/kept: source\/destination check off on eth0/);
      expect(lines).toMatch(/kept: termination protection on/);
      const json = await cli(['restore', `--config=${config}`, '--dry-run', '--json', ...moved, file]);
      expect(json.code, json.stderr).toBe(0);
      const parsed = JSON.parse(json.stdout.toString()) as {
        launch: {
          instance: { type: string; subnet: string };
          settings: { setting: string; outcome: string; why?: string }[];
        };
      };
      expect(parsed.launch.instance).toMatchObject({ type: 'm5.xlarge', subnet: otherZone.SubnetId });
      const outcome = (setting: string): string[] =>
        parsed.launch.settings.filter((s) => s.setting === setting).map((s) => s.outcome);
      expect(outcome('CPU options')).toEqual(['adapted']);
      expect(outcome('network interface')).toEqual(['lost']);
      expect(outcome('Elastic IP')).toEqual(['lost']);
      expect(outcome('instance profile')).toEqual(['kept']);
      expect(outcome('termination protection')).toEqual(['kept']);
      const real = await cli(['restore', `--config=${config}`, ...moved, file]);
      expect(real.code, real.stderr).toBe(0);
      expect(real.stderr).toMatch(/adapted: CPU options 2 cores x 1 thread/);
      expect(real.stderr).toMatch(/lost: network interface eth1/);
    });
  });

  it('a seeded t2.micro restores as itself; as m5.large only when ENA is asserted', async () => {
    await withEmulator({}, async (em, dir) => {
      const { config, file, instanceId } = await backedUp(em, dir, {
        instanceType: 't2.micro',
        volumes: [{ sizeGiB: 1, fill: { blocks: 3, seed: 4 } }],
      });
      const source = (await em.admin.state()).instances.find(
        (i) => i.InstanceId === instanceId,
      ) as AdminRecord;
      expect([source.EnaSupport, source.BootMode, source.CpuOptions]).toEqual([
        false,
        'legacy-bios',
        { CoreCount: 1, ThreadsPerCore: 1 },
      ]);
      const itself = await cli(['restore', `--config=${config}`, file]);
      expect(itself.code, itself.stderr).toBe(0);
      const newId = /^instance (i-[0-9a-f]+) /m.exec(itself.stdout.toString())?.[1];
      const launched = (await em.admin.state()).instances.find((i) => i.InstanceId === newId) as AdminRecord;
      expect([launched.InstanceType, launched.EnaSupport, launched.CurrentInstanceBootMode]).toEqual([
        't2.micro',
        false,
        'legacy-bios',
      ]);
      const before = await counts(em);
      const refused = await cli(['restore', `--config=${config}`, '--instance-type=m5.large', file]);
      expect(refused.code).toBe(2);
      expect(await counts(em)).toEqual(before);
      const asserted = await cli([
        'restore',
        `--config=${config}`,
        '--instance-type=m5.large',
        '--ena-support',
        file,
      ]);
      expect(asserted.code, asserted.stderr).toBe(0);
      const nitro = /^instance (i-[0-9a-f]+) /m.exec(asserted.stdout.toString())?.[1];
      const onNitro = (await em.admin.state()).instances.find((i) => i.InstanceId === nitro) as AdminRecord;
      expect([onNitro.InstanceType, onNitro.EnaSupport]).toEqual(['m5.large', true]);
    });
  });

  it('fails, naming the volume, when the launched instance lacks one of the restored volumes', async () => {
    await withEmulator({ launchDropsVolume: 1 }, async (em, dir) => {
      const { config, file } = await backedUp(em, dir, {
        volumes: [
          { sizeGiB: 1, fill: { blocks: 2, seed: 5 } },
          { device: '/dev/sdf', sizeGiB: 1, fill: { blocks: 2, seed: 6 } },
        ],
      });
      const result = await cli(['restore', `--config=${config}`, file]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /runs without the restored volume\(s\) \/dev\/sdf \(snap-[0-9a-f]+, source vol-[0-9a-f]+\)/,
      );
    });
  });
});

describe('restore options that cannot apply', () => {
  it('refuses a flag, and says a config key without refusing it', async () => {
    await withEmulator({}, async (em, dir) => {
      const { file } = await backedUp(em, dir, { volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 7 } }] });
      const withZone = writeConfig(dir.path, em, '[restore]\navailability-zone = us-east-1b\n', 'zone');
      const before = await counts(em);
      const toFiles = await cli([
        'restore',
        `--config=${withZone}`,
        `--to-dir=${join(dir.path, 'out')}`,
        '--subnet-id=subnet-0123456789abcdef0',
        file,
      ]);
      expect(toFiles.code).toBe(2);
      expect(toFiles.stderr).toMatch(
        /--subnet-id cannot apply to a restore to files under .*: a restore to files writes images/,
      );
      const noLaunch = await cli([
        'restore',
        `--config=${withZone}`,
        '--no-launch',
        '--instance-type=m5.large',
        file,
      ]);
      expect(noLaunch.code).toBe(2);
      expect(noLaunch.stderr).toMatch(/--instance-type cannot apply to .*: --no-launch launches nothing/);
      expect(await counts(em)).toEqual(before);
      // The config file serves every restore of the unit: its zone is not for an instance, and said.
      const kept = await cli(['restore', `--config=${withZone}`, '--dry-run', file]);
      expect(kept.code, kept.stderr).toBe(0);
      expect(kept.stderr).toMatch(
        /\[restore\] availability-zone of .*zone\.ini is not used for .*: an instance lands in the zone of its subnet/,
      );
    });
  });
});
