import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { KubePod } from '../daemon/core/kube.js';
import type { FindingDraft, LogLine, NodeView } from '../daemon/core/types.js';
import { CATEGORIES } from '../daemon/core/types.js';
import {
  type CompiledRule,
  compileRuleFile,
  createLogRuleDetector,
  createLogRuleDetectorFromRules,
  defaultRuleDir,
  loadRuleFiles,
  matchRules,
  RuleFileError,
  ruleMatchesExample,
} from '../daemon/detectors/log-rules.js';

const RULES = loadRuleFiles(defaultRuleDir());

describe('shipped rule files', () => {
  it('load, validate and cover the node-problem-detector defaults plus the extended catalog', () => {
    const reasons = new Set(RULES.map((r) => r.spec.reason));
    for (const r of ['OOMKilling', 'TaskHung', 'KernelOops', 'Ext4Error', 'Ext4Warning', 'IOError', 'ReadonlyFilesystem', 'XfsShutdown', 'UnregisterNetDevice', 'FrequentKubeletRestart', 'FrequentContainerdRestart', 'FrequentDockerRestart']) {
      expect(reasons, r).toContain(r);
    }
    const categories = new Set(RULES.map((r) => r.spec.category));
    for (const c of ['KernelOOM', 'OOMKilled', 'KernelHungTask', 'KernelSoftLockup', 'FilesystemError', 'NetworkLinkDown', 'ConntrackFull', 'GPUXid', 'ThermalThrottle', 'KubeletUnhealthy', 'RuntimeUnhealthy', 'ClockSkew', 'CertificateExpiry', 'DNSFailure'] as const) {
      expect(categories, c).toContain(c);
    }
    for (const r of RULES) expect(CATEGORIES).toContain(r.spec.category);
  });

  describe.each(RULES.map((r) => [r.spec.id, r] as [string, CompiledRule]))('rule %s', (_id, rule) => {
    it.each(rule.spec.examples.match.map((e) => [e.slice(0, 90), e]))('matches %s', (_label, example) => {
      expect(ruleMatchesExample(rule, example)).toBe(true);
    });
    it.each(rule.spec.examples.noMatch.map((e) => [e.slice(0, 90), e]))('does not match %s', (_label, example) => {
      expect(ruleMatchesExample(rule, example)).toBe(false);
    });
  });
});
