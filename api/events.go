package api

import (
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tessera/tessera/internal/core"
)

// publishEvents adds one webhook per event type of core.EventCatalog to the OpenAPI
// document: a POST whose body is the Standard Webhooks envelope (type, timestamp, data) with
// the data schema of the event's Go type, published as the component <Type>Event (its
// envelope as <Type>Webhook), with the signature headers Tessera sends. A receiver generates
// its types from them.
func publishEvents(doc *huma.OpenAPI) {
	registry := doc.Components.Schemas
	if doc.Webhooks == nil {
		doc.Webhooks = map[string]*huma.PathItem{}
	}
	for _, kind := range core.EventCatalog() {
		dataType := reflect.TypeOf(kind.Data)
		data := registry.Schema(dataType, true, "")
		envelope := strings.TrimSuffix(dataType.Name(), "Event") + "Webhook"
		schema := &huma.Schema{
			Type:                 huma.TypeObject,
			Description:          "The body of a " + kind.Type + " webhook: " + kind.Description,
			AdditionalProperties: false,
			Required:             []string{"type", "timestamp", "data"},
			Properties: map[string]*huma.Schema{
				"type":      {Type: huma.TypeString, Enum: []any{kind.Type}, Description: "The event type."},
				"timestamp": {Type: huma.TypeString, Format: "date-time", Description: "When the event happened."},
				"data":      data,
			},
		}
		schema.PrecomputeMessages() // what Huma does for the schemas it builds: validation needs it
		registry.Map()[envelope] = schema
		doc.Webhooks[kind.Type] = &huma.PathItem{Post: &huma.Operation{
			OperationID: "event-" + strings.NewReplacer(".", "-", "_", "-").Replace(kind.Type),
			Summary:     kind.Type,
			Description: kind.Description + " Tessera POSTs it to every enabled endpoint subscribed to " + kind.Type +
				", signed as Standard Webhooks (see the README's Webhooks section), and retries until an answer is 2xx.",
			Tags: []string{"Webhooks"},
			// The receiver authenticates the request by its signature headers, not a scheme
			// of this document: security: [].
			Security:   []map[string][]string{},
			Parameters: webhookHeaders(),
			RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
				"application/json": {Schema: &huma.Schema{Ref: "#/components/schemas/" + envelope}},
			}},
			Responses: map[string]*huma.Response{
				"200": {Description: "Any 2xx status acknowledges the delivery; anything else (or no answer in time) is retried."},
			},
		}}
	}
}

// webhookHeaders are the Standard Webhooks headers of every webhook request.
func webhookHeaders() []*huma.Param {
	header := func(name, doc string) *huma.Param {
		return &huma.Param{Name: name, In: "header", Required: true, Description: doc, Schema: &huma.Schema{Type: huma.TypeString}}
	}
	return []*huma.Param{
		header("webhook-id", "The event id, the same on every attempt and for every endpoint: deduplicate on it."),
		header("webhook-timestamp", "The attempt's time, in Unix seconds."),
		header("webhook-signature", "v1, and the base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body}, keyed with the endpoint's secret (after whsec_, base64-decoded)."),
	}
}
