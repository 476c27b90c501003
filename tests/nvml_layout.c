/*
 * Prints, as JSON, the sizes and field offsets the C compiler gives NVML's structs as
 * nvml.h declares them (NVIDIA's header: field types and order kept, comments left out),
 * and the version word of nvmlMemory_v2_t. tests/ffi_nvml_test.ts compiles and runs it
 * with `cc` and compares the output with ffi/nvml.ts's layout constants, so a wrong
 * offset there fails a test instead of reading the wrong bytes from a real driver.
 *
 * Kept apart from tests/fake_gpu.c on purpose: the double's structs are what it writes,
 * this file is what the driver's header says.
 */
#include <stddef.h>
#include <stdio.h>

/* nvml.h: nvmlMemory_t */
typedef struct nvmlMemory_st {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

/* nvml.h: nvmlMemory_v2_t */
typedef struct nvmlMemory_v2_st {
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_v2_t;

/* nvml.h: NVML_STRUCT_VERSION and nvmlMemory_v2 */
#define NVML_STRUCT_VERSION(data, ver) (unsigned int)(sizeof(nvml##data##_v##ver##_t) | (ver << 24U))
#define nvmlMemory_v2 NVML_STRUCT_VERSION(Memory, 2)

/* nvml.h: nvmlUtilization_t */
typedef struct nvmlUtilization_st {
  unsigned int gpu;
  unsigned int memory;
} nvmlUtilization_t;

/* nvml.h: nvmlProcessInfo_t (nvmlProcessInfo_v2_t; v3 has the same fields) */
typedef struct nvmlProcessInfo_st {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
} nvmlProcessInfo_t;

/* nvml.h: nvmlProcessInfo_v1_t (the unversioned nvmlDevice*RunningProcesses) */
typedef struct nvmlProcessInfo_v1_st {
  unsigned int pid;
  unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

#define FIELD(type, field) printf(", \"%s\": %zu", #field, offsetof(type, field))

int main(void) {
  printf("{\"nvmlMemory_t\": {\"size\": %zu", sizeof(nvmlMemory_t));
  FIELD(nvmlMemory_t, total);
  FIELD(nvmlMemory_t, free);
  FIELD(nvmlMemory_t, used);
  printf("},\n \"nvmlMemory_v2_t\": {\"size\": %zu", sizeof(nvmlMemory_v2_t));
  FIELD(nvmlMemory_v2_t, version);
  FIELD(nvmlMemory_v2_t, total);
  FIELD(nvmlMemory_v2_t, reserved);
  FIELD(nvmlMemory_v2_t, free);
  FIELD(nvmlMemory_v2_t, used);
  printf("},\n \"nvmlUtilization_t\": {\"size\": %zu", sizeof(nvmlUtilization_t));
  FIELD(nvmlUtilization_t, gpu);
  FIELD(nvmlUtilization_t, memory);
  printf("},\n \"nvmlProcessInfo_t\": {\"size\": %zu", sizeof(nvmlProcessInfo_t));
  FIELD(nvmlProcessInfo_t, pid);
  FIELD(nvmlProcessInfo_t, usedGpuMemory);
  FIELD(nvmlProcessInfo_t, gpuInstanceId);
  FIELD(nvmlProcessInfo_t, computeInstanceId);
  printf("},\n \"nvmlProcessInfo_v1_t\": {\"size\": %zu", sizeof(nvmlProcessInfo_v1_t));
  FIELD(nvmlProcessInfo_v1_t, pid);
  FIELD(nvmlProcessInfo_v1_t, usedGpuMemory);
  printf("},\n \"nvmlMemory_v2\": %u}\n", nvmlMemory_v2);
  return 0;
}
