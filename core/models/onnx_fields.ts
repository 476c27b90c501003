/**
 * The field numbers of onnx.proto that Headroom reads or writes by hand (the readers that
 * skim a model file without parsing its weights, and the generator that streams one):
 * named once, for every module that walks the protobuf.
 * @module
 */

/** ModelProto.ir_version */
export const MODEL_IR_VERSION = 1;
/** ModelProto.graph */
export const MODEL_GRAPH = 7;
/** GraphProto.initializer */
export const GRAPH_INITIALIZER = 5;
/** GraphProto.input */
export const GRAPH_INPUT = 11;
/** GraphProto.output */
export const GRAPH_OUTPUT = 12;
/** TensorProto.name */
export const TENSOR_NAME = 8;
/** TensorProto.raw_data */
export const TENSOR_RAW_DATA = 9;
/** TensorProto.external_data */
export const TENSOR_EXTERNAL_DATA = 13;
/** TensorProto.data_location */
export const TENSOR_DATA_LOCATION = 14;
/** StringStringEntryProto.key */
export const ENTRY_KEY = 1;
/** StringStringEntryProto.value */
export const ENTRY_VALUE = 2;
/** TensorProto.DataLocation.EXTERNAL */
export const LOCATION_EXTERNAL = 1;
