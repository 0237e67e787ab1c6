package fleet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func intp(i int) *int { return &i }

func TestDecodeVehicleDataFixture(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile("testdata/vehicle_data_online.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeVehicleData(body)
	if err != nil {
		t.Fatal(err)
	}
	want := VehicleData{
		ID: 100021, VIN: "5YJ3E1EA1JF000001", State: "online",
		Charge: &ChargeState{BatteryLevel: 42, ChargingState: "Charging", ConnChargeCable: "IEC", ChargeLimitSOC: 80,
			ChargeRate: 33.6, ChargerPower: 11, MinutesToFullCharge: 135},
		Location: &Location{Latitude: 52.2296756, Longitude: 21.0122287},
		Schedules: &ChargeScheduleData{
			Schedules: []ChargeSchedule{
				{ID: 1735686000, Name: "offpeak night", DaysOfWeek: 127, Enabled: true, StartEnabled: true, EndEnabled: true,
					StartTime: 1320, EndTime: 360, Latitude: 52.229675, Longitude: 21.01223},
				{ID: 1735686001, DaysOfWeek: 62, StartEnabled: true, EndEnabled: true,
					StartTime: 780, EndTime: 900, Latitude: 52.229675, Longitude: 21.01223},
			},
			MaxNumChargeSchedules: 10,
		},
		UTCOffset: intp(3600),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n%#v\nwant\n%#v", got, want)
	}
	if !reflect.DeepEqual(*got.Charge, *want.Charge) || !reflect.DeepEqual(*got.Schedules, *want.Schedules) {
		t.Errorf("charge %+v / schedules %+v", *got.Charge, *got.Schedules)
	}
}

func TestCablePlugged(t *testing.T) {
	t.Parallel()
	for cable, want := range map[string]bool{
		"IEC": true, "SAE": true, "GB_AC": true, "GB_DC": true,
		"": false, " ": false, "Unknown": false, "unknown": false, "<invalid>": false, "<INVALID>": false,
	} {
		if got := (ChargeState{ConnChargeCable: cable}).CablePlugged(); got != want {
			t.Errorf("CablePlugged(%q) = %v, want %v", cable, got, want)
		}
	}
}

func TestDecodeVehicleDataRobust(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want *VehicleData // nil: must fail with ErrMalformed
	}{
		{"empty", ``, nil},
		{"null", `null`, nil},
		{"array", `[]`, nil},
		{"string", `"response"`, nil},
		{"truncated", `{"response":{"charge_state":{"battery_level":4`, nil},
		{"trailing garbage", `{"response":{}} x`, nil},
		{"asleep envelope", `{"response":null,"error":"vehicle unavailable: vehicle is offline or asleep","error_description":""}`, nil},
		{"response not an object", `{"response":"online"}`, nil},
		{"response is an array", `{"response":[{"vin":"x"}]}`, nil},
		{"empty response", `{"response":{}}`, &VehicleData{}},
		{"parts of the wrong type are absent",
			`{"response":{"charge_state":null,"drive_state":"x","vehicle_config":[],"charge_schedule_data":5}}`,
			&VehicleData{}},
		{"leaves of the wrong type are zero",
			`{"response":{"id":"123","vin":5,"state":true,"charge_state":{"battery_level":"80","charging_state":7,"charge_rate":"fast","charger_power":11.5,"conn_charge_cable":null,"minutes_to_full_charge":30.6,"charge_limit_soc":{}}}}`,
			&VehicleData{ID: 123, Charge: &ChargeState{BatteryLevel: 80, ChargerPower: 11.5, MinutesToFullCharge: 31}}},
		{"numbers out of range are absent",
			`{"response":{"id":99999999999999999999999,"charge_state":{"battery_level":1e400,"charge_rate":-1e999,"minutes_to_full_charge":"Inf","charge_limit_soc":"0x50"}}}`,
			&VehicleData{Charge: &ChargeState{}}},
		{"id_s when id is missing", `{"response":{"id_s":"1492931337","vin":"V"}}`, &VehicleData{ID: 1492931337, VIN: "V"}},
		{"location needs both coordinates", `{"response":{"drive_state":{"latitude":52.1}}}`, &VehicleData{}},
		{"location out of range", `{"response":{"drive_state":{"latitude":91,"longitude":10}}}`, &VehicleData{}},
		{"location null (no location_data)", `{"response":{"drive_state":{"latitude":null,"longitude":null,"speed":null}}}`, &VehicleData{}},
		{"location at 0,0 is a location", `{"response":{"drive_state":{"latitude":0,"longitude":0}}}`,
			&VehicleData{Location: &Location{}}},
		{"utc offset not a number", `{"response":{"vehicle_config":{"utc_offset":"CET"}}}`, &VehicleData{}},
		{"utc offset absurd", `{"response":{"vehicle_config":{"utc_offset":999999}}}`, &VehicleData{}},
		{"utc offset negative", `{"response":{"vehicle_config":{"utc_offset":-18000}}}`, &VehicleData{UTCOffset: intp(-18000)}},
		{"schedules: odd elements skipped",
			`{"response":{"charge_schedule_data":{"charge_schedules":[1,null,"x",[],{"id":5,"days_of_week":"62","enabled":"yes","latitude":"52.5"}],"max_num_charge_schedules":null,"next_schedule":true}}}`,
			&VehicleData{Schedules: &ChargeScheduleData{Schedules: []ChargeSchedule{{ID: 5, DaysOfWeek: 62, Latitude: 52.5}}, NextSchedule: true}}},
		{"schedules: none", `{"response":{"charge_schedule_data":{"charge_schedules":null}}}`,
			&VehicleData{Schedules: &ChargeScheduleData{Schedules: []ChargeSchedule{}}}},
		{"duplicate keys: last wins", `{"response":{"vin":"A","vin":"B"}}`, &VehicleData{VIN: "B"}},
		{"deep nesting inside an ignored field", `{"response":{"extra":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`, &VehicleData{}},
		{"nesting beyond the decoder's limit", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeVehicleData([]byte(tc.body))
			if tc.want == nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("got %+v, %v; want ErrMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, *tc.want) {
				t.Errorf("decoded\n%s\nwant\n%s", show(got), show(*tc.want))
			}
		})
	}
}

// show prints a VehicleData with its pointers followed.
func show(v VehicleData) string {
	deref := func(p any) string {
		rv := reflect.ValueOf(p)
		if rv.IsNil() {
			return "nil"
		}
		return fmt.Sprintf("%+v", rv.Elem().Interface())
	}
	return fmt.Sprintf("id=%d vin=%q state=%q charge=%s location=%s schedules=%s utc_offset=%s",
		v.ID, v.VIN, v.State, deref(v.Charge), deref(v.Location), deref(v.Schedules), deref(v.UTCOffset))
}

// FuzzDecodeVehicleData: any input either decodes into values within their
// documented ranges, or fails with ErrMalformed; nothing panics. Its seeds
// (the testdata answers and the odd shapes below) run in every go test.
func FuzzDecodeVehicleData(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	for _, seed := range []string{
		``, `null`, `{}`, `{"response":null}`, `{"response":{}}`, `{"response":[]}`,
		`{"response":{"charge_state":{"battery_level":"80"},"drive_state":{"latitude":1e400,"longitude":"x"}}}`,
		`{"response":{"charge_schedule_data":{"charge_schedules":[{"id":-1,"days_of_week":1e20},7]}}}`,
		`{"response":{"vehicle_config":{"utc_offset":-9.2e18}}}`,
		`{"response":{"id":"9223372036854775808","id_s":"-1"}}`,
		"{\"response\":{\"vin\":\"\xff\xfe\"}}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		vd, err := DecodeVehicleData(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			if !reflect.DeepEqual(vd, VehicleData{}) {
				t.Fatalf("error %v with non-zero data %+v", err, vd)
			}
			return
		}
		if l := vd.Location; l != nil && !validPosition(l.Latitude, l.Longitude) {
			t.Fatalf("location out of range: %+v", *l)
		}
		if o := vd.UTCOffset; o != nil && (*o < -14*3600 || *o > 14*3600) {
			t.Fatalf("utc offset out of range: %d", *o)
		}
		if s := vd.Schedules; s != nil && s.Schedules == nil {
			t.Fatal("schedule data without a (possibly empty) schedule list")
		}
	})
}
