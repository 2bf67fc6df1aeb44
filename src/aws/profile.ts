/**
 * The named profile of a config, checked against the shared files before any call. Kept apart
 * from the clients: a restore to files checks nothing of AWS and must not load the SDK.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { loadSharedConfigFiles } from '@smithy/core/config';
import { type AwsSettings, suggestion } from '../config.js';
import { UsageError } from '../errors.js';

/**
 * A named profile that neither shared file holds is a config mistake (exit 2), said before any
 * call: the SDK would say it only at the first request, as a credential failure.
 */
export async function refuseUnknownProfile(
  aws: AwsSettings,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const profile = aws.profile;
  if (profile === undefined) return;
  const { configFile, credentialsFile } = await loadSharedConfigFiles({ ignoreCache: true });
  const known = [...new Set([...Object.keys(configFile), ...Object.keys(credentialsFile)])];
  if (known.includes(profile)) return;
  const configPath = env.AWS_CONFIG_FILE ?? join(homedir(), '.aws', 'config');
  const credentialsPath = env.AWS_SHARED_CREDENTIALS_FILE ?? join(homedir(), '.aws', 'credentials');
  throw new UsageError(
    `[aws] profile ${profile} is in neither ${configPath} ([profile ${profile}]) nor ${credentialsPath} ([${profile}]).` +
      `${suggestion(profile, known)} Known profiles: ${known.length > 0 ? known.join(', ') : 'none'}.`,
  );
}
