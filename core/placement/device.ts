/**
 * What the scheduler reads about the device and the process: one reading of device 0,
 * where readings come from, and the meter measured switches use. Apart from the
 * scheduler so its sections can share the types without importing the scheduler.
 * @module
 */

/** One reading of device 0, as the scheduler needs it. */
export interface DeviceReading {
  /** none: no GPU usable; lost: the driver says the GPU is gone; error: another driver error (last good figures). */
  state: "none" | "ok" | "error" | "lost";
  freeBytes: number;
  totalBytes: number;
  /** Our tracked GPU bytes when the figures were read (corrects a reading older than our last change). */
  trackedBytes: number;
  /** True when the figures come from a driver (NVML, CUDA) that shows released memory: releases are confirmed against it. */
  confirmsReleases: boolean;
  /** Grows with every driver read: tells a reading taken after a release from one taken before. */
  seq: number;
  error?: string;
}

/** Where the device figures come from (the monitor, or a model of it in tests). */
export interface DeviceView {
  /** Device 0 now: `fresh` asks the driver again instead of the last sample. */
  read(fresh: boolean): DeviceReading;
}

/** What measured switches and test loads read besides the device. */
export interface Meter {
  /** The process's resident memory now. */
  rssBytes(): number;
  /** Device used bytes from a fresh driver read, or null without a driver that reports them. */
  deviceUsedBytes(): number | null;
  /**
   * Waits (bounded) until the process's memory stops moving after workers ended: a
   * terminated worker's memory goes back to the system a little later, and a baseline
   * taken too soon makes the next model's RAM read low or negative.
   */
  settle?(): Promise<void>;
}
