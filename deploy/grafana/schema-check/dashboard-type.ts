// The official Grafana dashboard type, as a dashboard's JSON can meet it.
//
// @grafana/schema declares some fields as TypeScript string enums (ThresholdsMode, MappingType,
// ...). A string enum is nominal: even "absolute", its exact value, is not assignable to it, and
// JSON cannot name the enum member. `AsJson` swaps each string enum for the union of its values
// (`${ThresholdsMode}` is "absolute" | "percentage"), which is what Grafana reads from JSON;
// everything else (required fields, unknown fields, numeric enums, nesting) stays as strict as
// the schema's own type.
import type { Dashboard } from "@grafana/schema";

type AsJson<T> =
  T extends string ? `${T}`
  : T extends readonly unknown[] ? { [K in keyof T]: AsJson<T[K]> }
  : T extends object ? { [K in keyof T]: AsJson<T[K]> }
  : T;

export type JsonDashboard = AsJson<Dashboard>;
