package migration

import "reflect"

func equalJSON(a, b map[string]interface{}) bool { return reflect.DeepEqual(a, b) }
