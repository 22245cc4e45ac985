package jobspecs

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// blocks returns the blocks of type typ in body, by their first label.
func blocks(body *hclsyntax.Body, typ string) map[string]*hclsyntax.Block {
	out := map[string]*hclsyntax.Block{}
	for _, b := range body.Blocks {
		if b.Type == typ {
			label := ""
			if len(b.Labels) > 0 {
				label = b.Labels[0]
			}
			out[label] = b
		}
	}
	return out
}

func TestBerthJobspecParses(t *testing.T) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCLFile(filepath.Join(".", "berth.nomad.hcl"))
	if diags.HasErrors() {
		t.Fatalf("berth.nomad.hcl does not parse: %s", diags.Error())
	}
	body := f.Body.(*hclsyntax.Body)
	jobs := blocks(body, "job")
	job := jobs["berth"]
	if len(jobs) != 1 || job == nil {
		t.Fatalf("want exactly one job \"berth\", got %d job blocks", len(jobs))
	}
	groups := blocks(job.Body, "group")
	for _, name := range []string{"server", "router"} {
		g := groups[name]
		if g == nil {
			t.Fatalf("job has no group %q", name)
		}
		for _, want := range []string{"network", "update", "service", "task"} {
			if len(blocks(g.Body, want)) == 0 {
				t.Errorf("group %s has no %s block", name, want)
			}
		}
		if _, ok := g.Body.Attributes["count"]; !ok {
			t.Errorf("group %s has no count", name)
		}
	}
	task := blocks(groups["server"].Body, "task")["berth"]
	if task == nil {
		t.Fatal("server group has no task \"berth\"")
	}
	if len(blocks(task.Body, "vault")) != 1 || len(blocks(task.Body, "template")) == 0 {
		t.Error("the berth task must get its secrets through a vault block and templates")
	}
	// Nomad 1.6: the token-based integration, which needs policies.
	if v := blocks(task.Body, "vault")[""]; v != nil {
		if _, ok := v.Body.Attributes["policies"]; !ok {
			t.Error("the berth task's vault block names no policies (Nomad 1.6's token-based integration)")
		}
	}
	var vars []string
	for name := range blocks(body, "variable") {
		vars = append(vars, name)
	}
	for _, v := range []string{"berth_binary", "apps_domain", "consul_address", "consul_prefix", "vault_address", "vault_policies", "app_vault_policies"} {
		if !slices.Contains(vars, v) {
			t.Errorf("variable %q missing", v)
		}
	}
}
