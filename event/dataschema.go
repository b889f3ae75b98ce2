package event

// SchemaBase is where the JSON Schemas of event data are published; the
// files are docs/schemas/v1/ in the repository.
const SchemaBase = "https://raw.githubusercontent.com/cometstream/cometstream/main/docs/schemas/v1/"

// DataSchema returns the URL of the JSON Schema of an event type's data,
// which events carry in their dataschema attribute; "" for an unknown type.
func DataSchema(t Type) string {
	switch {
	case t.Row():
		if !t.Known() {
			return ""
		}
		return SchemaBase + "row.json"
	case t.Known():
		return SchemaBase + string(t)[len("comet.report."):] + ".json"
	}
	return ""
}
