/**
 * The instance types the emulator knows, shaped like DescribeInstanceTypes' InstanceTypeInfo.
 * Facts from the EC2 documentation:
 * - boot modes: "Instance type boot modes" (Nitro Intel and AMD types: legacy-bios and uefi; Xen
 *   types t2 and m4: legacy-bios only; Graviton: uefi only);
 * - ENA: "Enhanced networking on Amazon EC2 instances" (current generations require it; t2 has
 *   none; m4 below 16xlarge uses the Intel 82599 VF, SriovNetSupport simple);
 * - CPU options: "Supported CPU options for Amazon EC2 instance types" (valid core counts and
 *   threads per core; none for bare metal);
 * - network interfaces and IPv4 addresses per interface: "Maximum IP addresses per network
 *   interface";
 * - burstable credits (T types only), hibernation ("Hibernation prerequisites": not bare metal)
 *   and Nitro Enclaves ("Nitro Enclaves requirements": Intel/AMD Nitro types of 4 vCPUs or more,
 *   not T types; Graviton of 2 vCPUs or more).
 */
import type { InstanceTypeInfo } from '@aws-sdk/client-ec2';

interface Cpu {
  vcpus: number;
  cores: number;
  threads: number;
  validCores: number[];
  validThreads: number[];
}

interface Traits {
  architecture?: 'x86_64' | 'arm64';
  bootModes: ('legacy-bios' | 'uefi')[];
  ena: 'required' | 'supported' | 'unsupported';
  ebsOptimized: 'default' | 'supported' | 'unsupported';
  burstable?: boolean;
  enclaves?: boolean;
  bareMetal?: boolean;
}

const NITRO: Traits = { bootModes: ['legacy-bios', 'uefi'], ena: 'required', ebsOptimized: 'default' };
const GRAVITON: Traits = { ...NITRO, architecture: 'arm64', bootModes: ['uefi'], enclaves: true };
const XEN_T2: Traits = {
  bootModes: ['legacy-bios'],
  ena: 'unsupported',
  ebsOptimized: 'unsupported',
  burstable: true,
};
const XEN_M4: Traits = { bootModes: ['legacy-bios'], ena: 'unsupported', ebsOptimized: 'default' };

const smt = (vcpus: number, validCores: number[]): Cpu => ({
  vcpus,
  cores: vcpus / 2,
  threads: 2,
  validCores,
  validThreads: [1, 2],
});
const single = (vcpus: number, validCores: number[]): Cpu => ({
  vcpus,
  cores: vcpus,
  threads: 1,
  validCores,
  validThreads: [1],
});

function type(
  name: string,
  traits: Traits,
  cpu: Cpu | null,
  network: { interfaces: number; addresses: number },
): InstanceTypeInfo {
  return {
    InstanceType: name as InstanceTypeInfo['InstanceType'],
    CurrentGeneration: !name.startsWith('t2.') && !name.startsWith('m4.'),
    BareMetal: traits.bareMetal ?? false,
    BurstablePerformanceSupported: traits.burstable ?? false,
    HibernationSupported: !(traits.bareMetal ?? false),
    SupportedBootModes: traits.bootModes,
    ProcessorInfo: { SupportedArchitectures: [traits.architecture ?? 'x86_64'] },
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
    NetworkInfo: {
      EnaSupport: traits.ena,
      MaximumNetworkInterfaces: network.interfaces,
      Ipv4AddressesPerInterface: network.addresses,
    },
    EbsInfo: { EbsOptimizedSupport: traits.ebsOptimized },
    NitroEnclavesSupport:
      (traits.enclaves ?? false) || (cpu !== null && cpu.vcpus >= 4 && traits === NITRO)
        ? 'supported'
        : 'unsupported',
  };
}

const T3: Traits = { ...NITRO, burstable: true };

export const INSTANCE_TYPES: ReadonlyMap<string, InstanceTypeInfo> = new Map(
  [
    type('t2.micro', XEN_T2, single(1, [1]), { interfaces: 2, addresses: 2 }),
    type('t2.small', XEN_T2, single(1, [1]), { interfaces: 3, addresses: 4 }),
    type('t2.medium', XEN_T2, single(2, [1, 2]), { interfaces: 3, addresses: 6 }),
    type('t2.large', XEN_T2, single(2, [1, 2]), { interfaces: 3, addresses: 12 }),
    type('t3.micro', T3, smt(2, [1]), { interfaces: 2, addresses: 2 }),
    type('t3.small', T3, smt(2, [1]), { interfaces: 3, addresses: 4 }),
    type('t3.medium', T3, smt(2, [1]), { interfaces: 3, addresses: 6 }),
    type('t3.large', T3, smt(2, [1]), { interfaces: 3, addresses: 12 }),
    type('m4.large', XEN_M4, smt(2, [1]), { interfaces: 2, addresses: 10 }),
    type('m4.xlarge', XEN_M4, smt(4, [1, 2]), { interfaces: 4, addresses: 15 }),
    type('m5.large', NITRO, smt(2, [1]), { interfaces: 3, addresses: 10 }),
    type('m5.xlarge', NITRO, smt(4, [2]), { interfaces: 4, addresses: 15 }),
    type('m5.metal', { ...NITRO, bareMetal: true }, null, { interfaces: 15, addresses: 50 }),
    type('m6i.large', NITRO, smt(2, [1]), { interfaces: 3, addresses: 10 }),
    type('m6i.xlarge', NITRO, smt(4, [1, 2]), { interfaces: 4, addresses: 15 }),
    type('c5.large', NITRO, smt(2, [1]), { interfaces: 3, addresses: 10 }),
    type('c5.xlarge', NITRO, smt(4, [2]), { interfaces: 4, addresses: 15 }),
    type('r5.large', NITRO, smt(2, [1]), { interfaces: 3, addresses: 10 }),
    type('r5.xlarge', NITRO, smt(4, [2]), { interfaces: 4, addresses: 15 }),
    type('m6g.large', GRAVITON, single(2, [1, 2]), { interfaces: 3, addresses: 10 }),
    type('m6g.xlarge', GRAVITON, single(4, [1, 2, 3, 4]), { interfaces: 4, addresses: 15 }),
  ].map((info) => [String(info.InstanceType), info]),
);

/** What an instance of this type shows when nothing else was asked for: the type's own settings. */
export function typeDefaults(info: InstanceTypeInfo): {
  Architecture: 'x86_64' | 'arm64';
  EnaSupport: boolean;
  SriovNetSupport?: string;
  BootMode: 'legacy-bios' | 'uefi' | 'uefi-preferred';
  CurrentInstanceBootMode: 'legacy-bios' | 'uefi';
  EbsOptimized: boolean;
  CpuOptions?: { CoreCount: number; ThreadsPerCore: number };
} {
  const modes = info.SupportedBootModes ?? [];
  const both = modes.includes('legacy-bios') && modes.includes('uefi');
  const v = info.VCpuInfo;
  return {
    Architecture: info.ProcessorInfo?.SupportedArchitectures?.[0] === 'arm64' ? 'arm64' : 'x86_64',
    EnaSupport: info.NetworkInfo?.EnaSupport !== 'unsupported',
    ...(String(info.InstanceType).startsWith('m4.') && { SriovNetSupport: 'simple' }),
    BootMode: both ? 'uefi-preferred' : modes.includes('uefi') ? 'uefi' : 'legacy-bios',
    CurrentInstanceBootMode: modes.includes('uefi') ? 'uefi' : 'legacy-bios',
    EbsOptimized: info.EbsInfo?.EbsOptimizedSupport === 'default',
    ...(v?.DefaultCores !== undefined &&
      v.DefaultThreadsPerCore !== undefined && {
        CpuOptions: { CoreCount: v.DefaultCores, ThreadsPerCore: v.DefaultThreadsPerCore },
      }),
  };
}
