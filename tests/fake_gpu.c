/*
 * fake_gpu.c - a test double of NVIDIA's NVML and CUDA runtime libraries.
 *
 * Built by scripts/build_fake_gpu.ts into tests/.build/libfakegpu.so (and
 * libfakegpu_nov2.so with -DFAKE_NO_MEMINFO_V2 -DFAKE_NO_PROCESSES_V3: an old
 * driver that lacks nvmlDeviceGetMemoryInfo_v2 and both _v3 process lists;
 * libfakegpu_procs_v1.so with -DFAKE_NO_PROCESSES_V3 -DFAKE_PROCESSES_V1: a
 * driver whose process lists are the oldest, unversioned symbols with the
 * 16-byte nvmlProcessInfo_v1_t). One .so serves as both HEADROOM_NVML_LIBRARY
 * and HEADROOM_CUDART_LIBRARY: it exports the NVML and CUDA runtime symbols
 * Headroom binds, with the real signatures and struct layouts, plus fake_*
 * control functions that tests call to set the devices' figures and to inject
 * failures.
 *
 * Memory model per device:
 *   used (as NVML v2 reports it) = other_used + sum(fake processes)
 *                                 + sum(live cudaMalloc allocations)
 *   free  = total - reserved - used        (clamped at 0)
 *   NVML v1 "used" = reserved + used       (v1 has no reserved field)
 * Each fake process is in the compute list, the graphics list or both (its
 * `lists` bits), as a real driver lists a CUDA process under compute and a
 * Vulkan one (Deno's WebGPU) under graphics, and a process in both with the same
 * bytes in each. cudaMalloc'd bytes show up in the compute list under the pid
 * that allocated them. Allocations of a pid that no longer exists are dropped,
 * as the driver frees a dead process's memory.
 *
 * State: process-local by default. When the env var FAKE_GPU_STATE names a
 * file (read on first use), or after fake_attach_state(path), the whole state
 * struct lives in that file through mmap(MAP_SHARED), so several processes
 * that load the double see the same devices, allocations and call counts.
 * Limits: the struct is lock-free; counters and the allocation table use
 * atomics, everything else (names, fake process lists, fail-next rules) is
 * plain memory that one controlling process is expected to write while the
 * others read. It is a test double, not a driver.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

#define FAKE_MAGIC 0x46414b45475055ull /* "FAKEGPU" */
#define FAKE_LAYOUT 1u
#define MAX_DEVICES 8
#define MAX_PROCS 256
#define MAX_ALLOCS 1024
#define MAX_COUNTERS 64
#define MAX_FAILS 32
#define NAME_LEN 64

/* ---- NVML types (layouts as in nvml.h) ---- */
typedef int nvmlReturn_t;
typedef struct fake_handle *nvmlDevice_t;

typedef struct {
  unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
  unsigned int version;
  unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

#define nvmlMemory_v2 (unsigned int)(sizeof(nvmlMemory_v2_t) | (2 << 24))

typedef struct {
  unsigned int gpu, memory;
} nvmlUtilization_t;

typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

_Static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t");
_Static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2_t");
_Static_assert(sizeof(nvmlUtilization_t) == 8, "nvmlUtilization_t");
_Static_assert(sizeof(nvmlProcessInfo_t) == 24, "nvmlProcessInfo_t");
_Static_assert(sizeof(nvmlProcessInfo_v1_t) == 16, "nvmlProcessInfo_v1_t");

enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_GPU_IS_LOST = 15,
  NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};
#define NVML_TEMPERATURE_GPU 0
#define NVML_VALUE_NOT_AVAILABLE_U64 0xFFFFFFFFFFFFFFFFull
#define NVML_VALUE_NOT_AVAILABLE_U32 0xFFFFFFFFu

/* ---- CUDA runtime codes ---- */
typedef int cudaError_t;
enum {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
};

/* ---- state ---- */
#define LIST_COMPUTE 1u
#define LIST_GRAPHICS 2u

struct fake_proc {
  uint32_t pid, gi, ci, lists; /* lists: LIST_COMPUTE | LIST_GRAPHICS */
  uint64_t bytes;
};

struct fake_device {
  char name[NAME_LEN];
  char uuid[NAME_LEN];
  uint64_t total, reserved, other_used;
  uint32_t util_gpu, util_mem, temperature, lost;
  uint32_t nprocs, _pad;
  struct fake_proc procs[MAX_PROCS];
};

#define CLAIMED 1 /* an allocation slot being filled in */

struct fake_alloc {
  uint64_t ptr; /* 0 = free slot; claimed with compare-and-swap */
  uint64_t bytes;
  uint32_t pid, dev;
};

struct fake_counter {
  char name[NAME_LEN];
  uint64_t count;
};

struct fake_fail {
  char name[NAME_LEN];
  int32_t code;
  int32_t remaining;
};

struct fake_state {
  uint64_t magic;
  uint32_t layout, device_count;
  char driver_version[NAME_LEN];
  int32_t runtime_version, cuda_driver_version;
  uint64_t next_ptr;
  struct fake_device dev[MAX_DEVICES];
  struct fake_alloc allocs[MAX_ALLOCS];
  struct fake_counter counters[MAX_COUNTERS];
  struct fake_fail fails[MAX_FAILS];
};

static struct fake_state local_state;
static struct fake_state *S;
/* Per-process, like the real libraries: NVML init refcount, CUDA device. */
static int nvml_init_count;
static int cuda_device;
static struct fake_handle {
  int index;
} handles[MAX_DEVICES];

static void set_defaults(struct fake_state *s) {
  memset(s, 0, sizeof *s);
  s->layout = FAKE_LAYOUT;
  s->device_count = 1;
  snprintf(s->driver_version, NAME_LEN, "%s", "580.95.05");
  s->runtime_version = 13000;
  s->cuda_driver_version = 13000;
  s->next_ptr = 0x7f0000000000ull;
  for (int i = 0; i < MAX_DEVICES; i++) {
    struct fake_device *d = &s->dev[i];
    snprintf(d->name, NAME_LEN, "Fake GPU %d", i);
    snprintf(d->uuid, NAME_LEN, "GPU-00000000-0000-0000-0000-%012d", i);
    d->total = 8ull << 30;
    d->temperature = 40;
  }
  __atomic_store_n(&s->magic, FAKE_MAGIC, __ATOMIC_RELEASE);
}

/* Maps the state file (creating and sizing it when needed). 0 on success. */
static int attach_file(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT, 0600);
  if (fd < 0) return -1;
  /* flock only guards creation, so two processes never both initialize. */
  flock(fd, LOCK_EX);
  struct stat st;
  if (fstat(fd, &st) != 0 ||
      ((size_t)st.st_size < sizeof(struct fake_state) &&
       ftruncate(fd, sizeof(struct fake_state)) != 0)) {
    flock(fd, LOCK_UN);
    close(fd);
    return -1;
  }
  void *p = mmap(NULL, sizeof(struct fake_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    flock(fd, LOCK_UN);
    close(fd);
    return -1;
  }
  struct fake_state *s = p;
  if (s->magic != FAKE_MAGIC || s->layout != FAKE_LAYOUT) set_defaults(s);
  flock(fd, LOCK_UN);
  close(fd);
  S = s;
  return 0;
}

static struct fake_state *st(void) {
  if (S) return S;
  const char *path = getenv("FAKE_GPU_STATE");
  if (path && *path && attach_file(path) == 0) return S;
  if (path && *path) fprintf(stderr, "fake_gpu: cannot map FAKE_GPU_STATE=%s: %s\n", path, strerror(errno));
  if (local_state.magic != FAKE_MAGIC) set_defaults(&local_state);
  S = &local_state;
  return S;
}

static void copy_name(char *dst, const char *src) {
  snprintf(dst, NAME_LEN, "%s", src ? src : "");
}

/* Counts a call of fn; returns the injected failure code, or 0. */
static int enter(const char *fn) {
  struct fake_state *s = st();
  for (int i = 0; i < MAX_COUNTERS; i++) {
    struct fake_counter *c = &s->counters[i];
    if (c->name[0] == 0) copy_name(c->name, fn);
    if (strcmp(c->name, fn) == 0) {
      __atomic_add_fetch(&c->count, 1, __ATOMIC_RELAXED);
      break;
    }
  }
  for (int i = 0; i < MAX_FAILS; i++) {
    struct fake_fail *f = &s->fails[i];
    if (f->remaining > 0 && strcmp(f->name, fn) == 0) {
      if (__atomic_sub_fetch(&f->remaining, 1, __ATOMIC_ACQ_REL) >= 0) return f->code;
    }
  }
  return 0;
}

static int pid_alive(uint32_t pid) {
  if (pid == (uint32_t)getpid()) return 1;
  return !(kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

/* Bytes held by live cudaMalloc allocations on dev; drops dead pids' ones. */
static uint64_t alloc_bytes(struct fake_state *s, uint32_t dev) {
  uint64_t sum = 0;
  for (int i = 0; i < MAX_ALLOCS; i++) {
    struct fake_alloc *a = &s->allocs[i];
    uint64_t ptr = __atomic_load_n(&a->ptr, __ATOMIC_ACQUIRE);
    if (ptr <= CLAIMED || a->dev != dev) continue;
    if (!pid_alive(a->pid)) {
      __atomic_compare_exchange_n(&a->ptr, &ptr, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
      continue;
    }
    sum += a->bytes;
  }
  return sum;
}

static uint64_t used_bytes(struct fake_state *s, uint32_t dev) {
  struct fake_device *d = &s->dev[dev];
  uint64_t sum = d->other_used + alloc_bytes(s, dev);
  for (uint32_t i = 0; i < d->nprocs && i < MAX_PROCS; i++) {
    if (d->procs[i].bytes != NVML_VALUE_NOT_AVAILABLE_U64) sum += d->procs[i].bytes;
  }
  return sum;
}

static uint64_t free_bytes(struct fake_state *s, uint32_t dev) {
  struct fake_device *d = &s->dev[dev];
  uint64_t taken = d->reserved + used_bytes(s, dev);
  return taken >= d->total ? 0 : d->total - taken;
}

static int valid_dev(struct fake_state *s, unsigned int dev) {
  return dev < s->device_count && dev < MAX_DEVICES;
}

/* ================= control functions ================= */

EXPORT void fake_reset(void) {
  struct fake_state *s = st();
  s->magic = 0;
  set_defaults(s);
}

/* Switches this process to a state file shared with other processes. */
EXPORT int fake_attach_state(const char *path) {
  return attach_file(path);
}

/* Switches this process back to its private state. */
EXPORT void fake_detach_state(void) {
  if (S && S != &local_state) munmap(S, sizeof(struct fake_state));
  S = NULL;
  if (local_state.magic != FAKE_MAGIC) set_defaults(&local_state);
  S = &local_state;
}

EXPORT void fake_set_device_count(unsigned int n) {
  st()->device_count = n > MAX_DEVICES ? MAX_DEVICES : n;
}
EXPORT void fake_set_total(unsigned int dev, unsigned long long bytes) {
  if (dev < MAX_DEVICES) st()->dev[dev].total = bytes;
}
EXPORT void fake_set_reserved(unsigned int dev, unsigned long long bytes) {
  if (dev < MAX_DEVICES) st()->dev[dev].reserved = bytes;
}
EXPORT void fake_set_other_used(unsigned int dev, unsigned long long bytes) {
  if (dev < MAX_DEVICES) st()->dev[dev].other_used = bytes;
}
EXPORT void fake_set_name(unsigned int dev, const char *name) {
  if (dev < MAX_DEVICES) copy_name(st()->dev[dev].name, name);
}
EXPORT void fake_set_uuid(unsigned int dev, const char *uuid) {
  if (dev < MAX_DEVICES) copy_name(st()->dev[dev].uuid, uuid);
}
EXPORT void fake_set_driver_version(const char *version) {
  copy_name(st()->driver_version, version);
}
EXPORT void fake_set_cuda_versions(int runtime, int driver) {
  st()->runtime_version = runtime;
  st()->cuda_driver_version = driver;
}
EXPORT void fake_set_utilization(unsigned int dev, unsigned int gpu, unsigned int mem) {
  if (dev >= MAX_DEVICES) return;
  st()->dev[dev].util_gpu = gpu;
  st()->dev[dev].util_mem = mem;
}
EXPORT void fake_set_temperature(unsigned int dev, unsigned int celsius) {
  if (dev < MAX_DEVICES) st()->dev[dev].temperature = celsius;
}
EXPORT void fake_set_lost(unsigned int dev, int lost) {
  if (dev < MAX_DEVICES) st()->dev[dev].lost = lost != 0;
}
/* Adds a process to the lists named by `lists` (LIST_COMPUTE, LIST_GRAPHICS or both)
 * with MIG ids; bytes = ~0 reads as "not available". */
EXPORT int fake_add_process_in(unsigned int dev, unsigned int pid, unsigned long long bytes,
                               unsigned int gi, unsigned int ci, unsigned int lists) {
  if (dev >= MAX_DEVICES) return -1;
  struct fake_device *d = &st()->dev[dev];
  if (d->nprocs >= MAX_PROCS) return -1;
  struct fake_proc *p = &d->procs[d->nprocs];
  p->pid = pid;
  p->bytes = bytes;
  p->gi = gi;
  p->ci = ci;
  p->lists = lists;
  d->nprocs++;
  return 0;
}
/* Adds a compute process with MIG ids; bytes = ~0 reads as "not available". */
EXPORT int fake_add_process_ex(unsigned int dev, unsigned int pid, unsigned long long bytes,
                               unsigned int gi, unsigned int ci) {
  return fake_add_process_in(dev, pid, bytes, gi, ci, LIST_COMPUTE);
}
/* Sets the bytes a process holds through the graphics API (Vulkan), adding it to the
 * graphics list or updating its entry there; 0 bytes removes it, as the driver drops a
 * process that freed its last allocation. The device's used memory follows. */
EXPORT int fake_set_graphics_process(unsigned int dev, unsigned int pid, unsigned long long bytes) {
  if (dev >= MAX_DEVICES) return -1;
  struct fake_device *d = &st()->dev[dev];
  for (uint32_t k = 0; k < d->nprocs && k < MAX_PROCS; k++) {
    if (d->procs[k].pid != pid || d->procs[k].lists != LIST_GRAPHICS) continue;
    if (bytes == 0) {
      d->procs[k] = d->procs[d->nprocs - 1];
      d->nprocs--;
    } else {
      d->procs[k].bytes = bytes;
    }
    return 0;
  }
  if (bytes == 0) return 0;
  return fake_add_process_in(dev, pid, bytes, NVML_VALUE_NOT_AVAILABLE_U32,
                             NVML_VALUE_NOT_AVAILABLE_U32, LIST_GRAPHICS);
}
/* Adds a process outside MIG (instance ids not available, as NVML reports). */
EXPORT int fake_add_process(unsigned int dev, unsigned int pid, unsigned long long bytes) {
  return fake_add_process_ex(dev, pid, bytes, NVML_VALUE_NOT_AVAILABLE_U32, NVML_VALUE_NOT_AVAILABLE_U32);
}
EXPORT void fake_clear_processes(unsigned int dev) {
  if (dev < MAX_DEVICES) st()->dev[dev].nprocs = 0;
}
/* The next `times` calls of fn return code. */
EXPORT void fake_fail_times(const char *fn, int code, int times) {
  struct fake_state *s = st();
  struct fake_fail *slot = NULL;
  for (int i = 0; i < MAX_FAILS && !slot; i++) {
    if (strcmp(s->fails[i].name, fn) == 0) slot = &s->fails[i];
  }
  for (int i = 0; i < MAX_FAILS && !slot; i++) {
    if (s->fails[i].remaining <= 0) slot = &s->fails[i];
  }
  if (!slot) return;
  copy_name(slot->name, fn);
  slot->code = code;
  slot->remaining = times;
}
EXPORT void fake_fail_next(const char *fn, int code) {
  fake_fail_times(fn, code, 1);
}
EXPORT unsigned long long fake_call_count(const char *fn) {
  struct fake_state *s = st();
  for (int i = 0; i < MAX_COUNTERS; i++) {
    if (strcmp(s->counters[i].name, fn) == 0) return __atomic_load_n(&s->counters[i].count, __ATOMIC_RELAXED);
  }
  return 0;
}
EXPORT unsigned long long fake_used(unsigned int dev) {
  return dev < MAX_DEVICES ? used_bytes(st(), dev) : 0;
}
EXPORT unsigned long long fake_allocated(unsigned int dev) {
  return dev < MAX_DEVICES ? alloc_bytes(st(), dev) : 0;
}

/* ================= NVML ================= */

static const char *nvml_error_text(nvmlReturn_t r) {
  switch (r) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 5: return "Already Initialized";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 8: return "Insufficient External Power";
    case 9: return "Driver Not Loaded";
    case 10: return "Timeout";
    case 11: return "Interrupt request issue";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 14: return "Corrupted infoROM";
    case 15: return "GPU is lost";
    case 16: return "GPU requires restart";
    case 17: return "The operating system has blocked the request.";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    case 19: return "In use by another client";
    case 20: return "Insufficient Memory";
    case 21: return "No data";
    case 22: return "The requested vgpu operation is not available on target device, because ECC is enabled";
    case 23: return "Ran out of critical resources, other than memory";
    case 24: return "The requested frequency is not supported";
    case 25: return "The provided version is invalid/unsupported";
    case 26: return "The requested functionality has been deprecated";
    case 27: return "The system is not ready for the request";
    case 28: return "The GPU was not found";
    case 29: return "The operation cannot be performed in the current state";
    default: return "Unknown Error";
  }
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
  enter("nvmlErrorString");
  return nvml_error_text(result);
}

EXPORT nvmlReturn_t nvmlInit_v2(void) {
  int f = enter("nvmlInit_v2");
  if (f) return f;
  nvml_init_count++;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
  int f = enter("nvmlShutdown");
  if (f) return f;
  if (nvml_init_count == 0) return NVML_ERROR_UNINITIALIZED;
  nvml_init_count--;
  return NVML_SUCCESS;
}

static int put_string(char *buf, unsigned int length, const char *s) {
  if (!buf) return NVML_ERROR_INVALID_ARGUMENT;
  if (strlen(s) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(buf, s, strlen(s) + 1);
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
  int f = enter("nvmlSystemGetDriverVersion");
  if (f) return f;
  if (!nvml_init_count) return NVML_ERROR_UNINITIALIZED;
  return put_string(version, length, st()->driver_version);
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
  int f = enter("nvmlDeviceGetCount_v2");
  if (f) return f;
  if (!nvml_init_count) return NVML_ERROR_UNINITIALIZED;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  *count = st()->device_count;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
  int f = enter("nvmlDeviceGetHandleByIndex_v2");
  if (f) return f;
  if (!nvml_init_count) return NVML_ERROR_UNINITIALIZED;
  struct fake_state *s = st();
  if (!device || !valid_dev(s, index)) return NVML_ERROR_INVALID_ARGUMENT;
  if (s->dev[index].lost) return NVML_ERROR_GPU_IS_LOST;
  handles[index].index = (int)index;
  *device = &handles[index];
  return NVML_SUCCESS;
}

/* Resolves a handle to a device index, or returns an NVML error code. */
static int dev_of(nvmlDevice_t h, unsigned int *out) {
  if (!nvml_init_count) return NVML_ERROR_UNINITIALIZED;
  struct fake_state *s = st();
  if (h < &handles[0] || h >= &handles[MAX_DEVICES]) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned int i = (unsigned int)(h - &handles[0]);
  if (!valid_dev(s, i)) return NVML_ERROR_INVALID_ARGUMENT;
  if (s->dev[i].lost) return NVML_ERROR_GPU_IS_LOST;
  *out = i;
  return NVML_SUCCESS;
}

#define DEVICE_ENTRY(fn, h, i)   \
  unsigned int i;                \
  {                              \
    int f_ = enter(fn);          \
    if (f_) return f_;           \
    int r_ = dev_of((h), &i);    \
    if (r_) return r_;           \
  }

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
  DEVICE_ENTRY("nvmlDeviceGetName", device, i);
  return put_string(name, length, st()->dev[i].name);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
  DEVICE_ENTRY("nvmlDeviceGetUUID", device, i);
  return put_string(uuid, length, st()->dev[i].uuid);
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
  DEVICE_ENTRY("nvmlDeviceGetMemoryInfo", device, i);
  if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
  struct fake_state *s = st();
  memory->total = s->dev[i].total;
  memory->free = free_bytes(s, i);
  memory->used = memory->total - memory->free;
  return NVML_SUCCESS;
}

#ifndef FAKE_NO_MEMINFO_V2
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
  DEVICE_ENTRY("nvmlDeviceGetMemoryInfo_v2", device, i);
  if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
  if (memory->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  struct fake_state *s = st();
  struct fake_device *d = &s->dev[i];
  uint64_t used = used_bytes(s, i);
  uint64_t taken = d->reserved + used;
  memory->total = d->total;
  memory->reserved = d->reserved;
  memory->free = taken >= d->total ? 0 : d->total - taken;
  memory->used = used;
  return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
  DEVICE_ENTRY("nvmlDeviceGetUtilizationRates", device, i);
  if (!utilization) return NVML_ERROR_INVALID_ARGUMENT;
  utilization->gpu = st()->dev[i].util_gpu;
  utilization->memory = st()->dev[i].util_mem;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensorType, unsigned int *temp) {
  DEVICE_ENTRY("nvmlDeviceGetTemperature", device, i);
  if (!temp || sensorType != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  *temp = st()->dev[i].temperature;
  return NVML_SUCCESS;
}

/* Builds one process list of device i: the fake processes in `list`, then (compute only)
 * one entry per pid holding cudaMalloc'd bytes. Returns the count. */
__attribute__((unused)) static unsigned int build_list(struct fake_state *s, unsigned int i, unsigned int list,
                               nvmlProcessInfo_t *out) {
  struct fake_device *d = &s->dev[i];
  unsigned int n = 0;
  for (uint32_t k = 0; k < d->nprocs && k < MAX_PROCS; k++) {
    if (!(d->procs[k].lists & list)) continue;
    out[n].pid = d->procs[k].pid;
    out[n].usedGpuMemory = d->procs[k].bytes;
    out[n].gpuInstanceId = d->procs[k].gi;
    out[n].computeInstanceId = d->procs[k].ci;
    n++;
  }
  if (list != LIST_COMPUTE) return n;
  alloc_bytes(s, i); /* drop dead pids first */
  for (int a = 0; a < MAX_ALLOCS; a++) {
    struct fake_alloc *al = &s->allocs[a];
    if (__atomic_load_n(&al->ptr, __ATOMIC_ACQUIRE) <= CLAIMED || al->dev != i) continue;
    unsigned int k = 0;
    while (k < n && out[k].pid != al->pid) k++;
    if (k == n) {
      out[n].pid = al->pid;
      out[n].usedGpuMemory = 0;
      out[n].gpuInstanceId = NVML_VALUE_NOT_AVAILABLE_U32;
      out[n].computeInstanceId = NVML_VALUE_NOT_AVAILABLE_U32;
      n++;
    }
    if (out[k].usedGpuMemory != NVML_VALUE_NOT_AVAILABLE_U64) out[k].usedGpuMemory += al->bytes;
  }
  return n;
}

__attribute__((unused)) static nvmlProcessInfo_t scratch[MAX_PROCS + MAX_ALLOCS];

/* The body every nvmlDevice*RunningProcesses* symbol shares; `v1` writes the 16-byte structs. */
__attribute__((unused)) static nvmlReturn_t running_processes(const char *fn, nvmlDevice_t device, unsigned int *infoCount,
                                      void *infos, unsigned int list, int v1) {
  DEVICE_ENTRY(fn, device, i);
  if (!infoCount) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned int n = build_list(st(), i, list, scratch);
  if (*infoCount < n) {
    *infoCount = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  if (n > 0 && !infos) return NVML_ERROR_INVALID_ARGUMENT;
  if (v1) {
    nvmlProcessInfo_v1_t *o = infos;
    for (unsigned int k = 0; k < n; k++) {
      o[k].pid = scratch[k].pid;
      o[k].usedGpuMemory = scratch[k].usedGpuMemory;
    }
  } else {
    memcpy(infos, scratch, n * sizeof(nvmlProcessInfo_t));
  }
  *infoCount = n;
  return NVML_SUCCESS;
}

#define PROCESS_LIST(fn, list, v1)                                                    \
  EXPORT nvmlReturn_t fn(nvmlDevice_t device, unsigned int *infoCount, void *infos) { \
    return running_processes(#fn, device, infoCount, infos, list, v1);                \
  }

#ifndef FAKE_NO_PROCESSES_V3
PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses_v3, LIST_COMPUTE, 0)
PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses_v3, LIST_GRAPHICS, 0)
#endif
#ifdef FAKE_PROCESSES_V1
PROCESS_LIST(nvmlDeviceGetComputeRunningProcesses, LIST_COMPUTE, 1)
PROCESS_LIST(nvmlDeviceGetGraphicsRunningProcesses, LIST_GRAPHICS, 1)
#endif

/* ================= CUDA runtime ================= */

EXPORT const char *cudaGetErrorName(cudaError_t error) {
  enter("cudaGetErrorName");
  switch (error) {
    case 0: return "cudaSuccess";
    case 1: return "cudaErrorInvalidValue";
    case 2: return "cudaErrorMemoryAllocation";
    case 3: return "cudaErrorInitializationError";
    case 34: return "cudaErrorStubLibrary";
    case 35: return "cudaErrorInsufficientDriver";
    case 100: return "cudaErrorNoDevice";
    case 101: return "cudaErrorInvalidDevice";
    case 999: return "cudaErrorUnknown";
    default: return "unrecognized error code";
  }
}

EXPORT const char *cudaGetErrorString(cudaError_t error) {
  enter("cudaGetErrorString");
  switch (error) {
    case 0: return "no error";
    case 1: return "invalid argument";
    case 2: return "out of memory";
    case 3: return "initialization error";
    case 34: return "CUDA driver is a stub library";
    case 35: return "CUDA driver version is insufficient for CUDA runtime version";
    case 100: return "no CUDA-capable device is detected";
    case 101: return "invalid device ordinal";
    case 999: return "unknown error";
    default: return "unrecognized error code";
  }
}

EXPORT cudaError_t cudaRuntimeGetVersion(int *v) {
  int f = enter("cudaRuntimeGetVersion");
  if (f) return f;
  if (!v) return cudaErrorInvalidValue;
  *v = st()->runtime_version;
  return cudaSuccess;
}

EXPORT cudaError_t cudaDriverGetVersion(int *v) {
  int f = enter("cudaDriverGetVersion");
  if (f) return f;
  if (!v) return cudaErrorInvalidValue;
  *v = st()->cuda_driver_version;
  return cudaSuccess;
}

EXPORT cudaError_t cudaGetDeviceCount(int *count) {
  int f = enter("cudaGetDeviceCount");
  if (f) return f;
  if (!count) return cudaErrorInvalidValue;
  *count = 0;
  if (st()->device_count == 0) return cudaErrorNoDevice;
  *count = (int)st()->device_count;
  return cudaSuccess;
}

EXPORT cudaError_t cudaSetDevice(int device) {
  int f = enter("cudaSetDevice");
  if (f) return f;
  if (st()->device_count == 0) return cudaErrorNoDevice;
  if (device < 0 || !valid_dev(st(), (unsigned int)device)) return cudaErrorInvalidDevice;
  cuda_device = device;
  return cudaSuccess;
}

EXPORT cudaError_t cudaMemGetInfo(size_t *freeOut, size_t *total) {
  int f = enter("cudaMemGetInfo");
  if (f) return f;
  struct fake_state *s = st();
  if (s->device_count == 0) return cudaErrorNoDevice;
  if (!freeOut || !total) return cudaErrorInvalidValue;
  if (!valid_dev(s, (unsigned int)cuda_device)) return cudaErrorInvalidDevice;
  *freeOut = free_bytes(s, (unsigned int)cuda_device);
  *total = s->dev[cuda_device].total;
  return cudaSuccess;
}

EXPORT cudaError_t cudaMalloc(void **devPtr, size_t size) {
  int f = enter("cudaMalloc");
  if (f) return f;
  struct fake_state *s = st();
  if (s->device_count == 0) return cudaErrorNoDevice;
  if (!devPtr) return cudaErrorInvalidValue;
  if (!valid_dev(s, (unsigned int)cuda_device)) return cudaErrorInvalidDevice;
  if (size == 0) {
    *devPtr = NULL;
    return cudaSuccess;
  }
  /* Not atomic against a concurrent cudaMalloc in another process: the
   * double may overshoot the total by one allocation under a race. */
  if (size > free_bytes(s, (unsigned int)cuda_device)) return cudaErrorMemoryAllocation;
  uint64_t span = (size + 0xFFFFull) & ~0xFFFFull;
  uint64_t ptr = __atomic_fetch_add(&s->next_ptr, span, __ATOMIC_ACQ_REL);
  for (int i = 0; i < MAX_ALLOCS; i++) {
    struct fake_alloc *a = &s->allocs[i];
    uint64_t zero = 0;
    if (__atomic_load_n(&a->ptr, __ATOMIC_RELAXED) != 0) continue;
    /* Claim with a placeholder so readers skip it until bytes are written. */
    if (!__atomic_compare_exchange_n(&a->ptr, &zero, CLAIMED, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
    a->bytes = size;
    a->pid = (uint32_t)getpid();
    a->dev = (uint32_t)cuda_device;
    __atomic_store_n(&a->ptr, ptr, __ATOMIC_RELEASE);
    *devPtr = (void *)(uintptr_t)ptr;
    return cudaSuccess;
  }
  return cudaErrorMemoryAllocation; /* allocation table full */
}

EXPORT cudaError_t cudaFree(void *devPtr) {
  int f = enter("cudaFree");
  if (f) return f;
  if (!devPtr) return cudaSuccess;
  struct fake_state *s = st();
  uint64_t want = (uint64_t)(uintptr_t)devPtr;
  for (int i = 0; i < MAX_ALLOCS; i++) {
    uint64_t cur = want;
    if (__atomic_compare_exchange_n(&s->allocs[i].ptr, &cur, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      return cudaSuccess;
    }
  }
  return cudaErrorInvalidValue;
}
