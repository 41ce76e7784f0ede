package main

import (
	"reflect"
	"testing"

	"github.com/builder-dev/builder/exporter"
)

func TestParseOutputs(t *testing.T) {
	for in, want := range map[string]exporter.Output{
		"out":                             {Type: "local", Dest: "out"},
		"type=oci,dest=a.tar":             {Type: "oci", Dest: "a.tar"},
		"type=image,name=reg:5000/a:1":    {Type: "image", Names: []string{"reg:5000/a:1"}},
		"type=image,name=r/a:1,push=true": {Type: "image", Names: []string{"r/a:1"}, Push: true},
		"type=registry,name=r/a:1":        {Type: "registry", Names: []string{"r/a:1"}, Push: true},
		`type=image,"name=r/a:1,r/b:2"`:   {Type: "image", Names: []string{"r/a:1", "r/b:2"}},
		"type=registry":                   {Type: "registry", Push: true},
	} {
		got, err := parseOutputs([]string{in})
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got[0], want) {
			t.Errorf("%s: got %+v, want %+v", in, got[0], want)
		}
	}
	for _, bad := range []string{"type=oci", "type=ftp,dest=x", "type=image,dest=x", "type=local,dest=d,push=true", "type=image,push=maybe", "type=oci,dest=a,color=red"} {
		if _, err := parseOutputs([]string{bad}); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}
