package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tessera/tessera/api"
)

func newOpenAPICommand() *cobra.Command {
	var v30 bool
	cmd := &cobra.Command{
		Use:   "openapi",
		Short: "Print the OpenAPI document (3.1, or 3.0 with --3.0); needs no database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec := api.Spec()
			var out []byte
			var err error
			if v30 {
				out, err = api.Document30(spec)
			} else {
				out, err = json.MarshalIndent(spec, "", "  ")
			}
			if err != nil {
				return fmt.Errorf("render openapi: %w", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return err
		},
	}
	cmd.Flags().BoolVar(&v30, "3.0", false, "print OpenAPI 3.0 instead of 3.1")
	return cmd
}
