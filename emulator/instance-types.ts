/**
 * The instance types the emulator knows, shaped like DescribeInstanceTypes' InstanceTypeInfo.
 * Facts from the EC2 documentation: "Determine the supported boot modes of an EC2 instance type"
 * (m5 supports legacy-bios and uefi; t2 only legacy-bios; Graviton types only uefi), the ENA pages
 * (t2 has no ENA, current generations require it), and the bare-metal types (no CPU options).
 */
import type { InstanceTypeInfo } from '@aws-sdk/client-ec2';

function type(
  name: string,
  architecture: 'x86_64' | 'arm64',
  bootModes: ('legacy-bios' | 'uefi')[],
  cpu: { vcpus: number; cores: number; threads: number; validCores: number[]; validThreads: number[] } | null,
  options: {
    bareMetal?: boolean;
    ena?: 'required' | 'supported' | 'unsupported';
    ebsOptimized?: 'default' | 'supported' | 'unsupported';
  } = {},
): InstanceTypeInfo {
  return {
    InstanceType: name as InstanceTypeInfo['InstanceType'],
    CurrentGeneration: true,
    BareMetal: options.bareMetal ?? false,
    SupportedBootModes: bootModes,
    ProcessorInfo: { SupportedArchitectures: [architecture] },
    VCpuInfo:
      cpu === null
        ? { DefaultVCpus: 96 }
        : {
            DefaultVCpus: cpu.vcpus,
            DefaultCores: cpu.cores,
            DefaultThreadsPerCore: cpu.threads,
            ValidCores: cpu.validCores,
            ValidThreadsPerCore: cpu.validThreads,
          },
    NetworkInfo: { EnaSupport: options.ena ?? 'required' },
    EbsInfo: { EbsOptimizedSupport: options.ebsOptimized ?? 'default' },
  };
}

export const INSTANCE_TYPES: ReadonlyMap<string, InstanceTypeInfo> = new Map(
  [
    type('t3.micro', 'x86_64', ['legacy-bios', 'uefi'], {
      vcpus: 2,
      cores: 1,
      threads: 2,
      validCores: [1],
      validThreads: [1, 2],
    }),
    type('m5.large', 'x86_64', ['legacy-bios', 'uefi'], {
      vcpus: 2,
      cores: 1,
      threads: 2,
      validCores: [1],
      validThreads: [1, 2],
    }),
    type('m5.xlarge', 'x86_64', ['legacy-bios', 'uefi'], {
      vcpus: 4,
      cores: 2,
      threads: 2,
      validCores: [2],
      validThreads: [1, 2],
    }),
    type('m5.metal', 'x86_64', ['legacy-bios', 'uefi'], null, { bareMetal: true }),
    type('m6g.large', 'arm64', ['uefi'], {
      vcpus: 2,
      cores: 2,
      threads: 1,
      validCores: [1, 2],
      validThreads: [1],
    }),
    type(
      't2.micro',
      'x86_64',
      ['legacy-bios'],
      { vcpus: 1, cores: 1, threads: 1, validCores: [1], validThreads: [1] },
      {
        ena: 'unsupported',
        ebsOptimized: 'unsupported',
      },
    ),
  ].map((info) => [String(info.InstanceType), info]),
);
