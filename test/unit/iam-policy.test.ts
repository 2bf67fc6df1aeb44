import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { calledActions } from '../aws-actions.js';

const ROOT = join(import.meta.dirname, '..', '..');
interface Statement {
  Sid: string;
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

const policy = JSON.parse(readFileSync(join(ROOT, 'examples', 'bacula', 'iam-policy.json'), 'utf8')) as {
  Statement: Statement[];
};
const list = (v: string | string[]): string[] => (Array.isArray(v) ? v : [v]);
const granted = new Set(policy.Statement.flatMap((s) => list(s.Action)));

describe('the IAM example (examples/bacula/iam-policy.json)', () => {
  it('grants every AWS action the code calls', () => {
    // GetCallerIdentity (doctor) needs no permission (STS API reference), so no statement grants it.
    const missing = [...calledActions()].filter((a) => !granted.has(a) && a !== 'sts:GetCallerIdentity');
    expect(missing).toEqual([]);
  });

  it('grants nothing the code never calls, but what EBS does with KMS on its behalf', () => {
    const called = calledActions();
    const onBehalf =
      /^kms:(Decrypt|Encrypt|GenerateDataKeyWithoutPlaintext|ReEncrypt\*|CreateGrant)$|^iam:PassRole$/;
    expect([...granted].filter((a) => !called.has(a) && !onBehalf.test(a))).toEqual([]);
  });

  it('cannot be used to forge the tags retention trusts, nor to delete what ec2-bpipe did not tag', () => {
    for (const statement of policy.Statement.filter((s) => list(s.Action).includes('ec2:CreateTags'))) {
      // Every CreateTags grant is conditioned: on the creating action, on our own snapshots and
      // keys, or on the restored-volume marker; none may add ec2-bpipe:config to a foreign snapshot.
      expect(statement.Condition, statement.Sid).toBeDefined();
      const onSnapshots = list(statement.Resource).some((r) => r === '*' || r.includes('snapshot'));
      if (onSnapshots) {
        const conditions = JSON.stringify(statement.Condition);
        expect(
          conditions.includes('ec2:CreateAction') || conditions.includes('aws:ResourceTag/ec2-bpipe:config'),
        ).toBe(true);
      }
    }
    const deletes = policy.Statement.filter((s) => list(s.Action).includes('ec2:DeleteSnapshot'));
    expect(deletes).toHaveLength(1);
    expect(JSON.stringify(deletes[0]?.Condition)).toContain('aws:ResourceTag/ec2-bpipe:config');
    const pass = policy.Statement.find((s) => list(s.Action).includes('iam:PassRole'));
    expect(list(pass?.Resource ?? '*').every((r) => !r.endsWith('/*'))).toBe(true);
    expect(JSON.stringify(pass?.Condition)).toContain('iam:PassedToService');
  });
});
