package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
)

// proxyDayBits is tesla-http-proxy's own table (pkg/proxy/command.go),
// written out here independently of dayNameBits so the tests check the
// package against the proxy rather than against itself.
var proxyDayBits = map[string]int{
	"SUN": 1, "SUNDAY": 1, "MON": 2, "MONDAY": 2, "TUES": 4, "TUESDAY": 4,
	"WED": 8, "WEDNESDAY": 8, "THURS": 16, "THURSDAY": 16, "FRI": 32, "FRIDAY": 32,
	"SAT": 64, "SATURDAY": 64, "ALL": 127, "WEEKDAYS": 62,
}

// proxyParse mimics the proxy's getDays.
func proxyParse(s string) (int, bool) {
	mask := 0
	for _, d := range strings.Split(s, ",") {
		v, ok := proxyDayBits[strings.TrimSpace(strings.ToUpper(d))]
		if !ok {
			return 0, false
		}
		mask |= v
	}
	return mask, true
}

func TestDayNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mask int
		want string
	}{
		{127, "All"},
		{62, "Weekdays"},
		{1, "Sunday"},
		{2, "Monday"},
		{4, "Tuesday"},
		{16, "Thursday"},
		{64, "Saturday"},
		{65, "Sunday,Saturday"},
		{20, "Tuesday,Thursday"},
		{63, "Sunday,Monday,Tuesday,Wednesday,Thursday,Friday"},
		{126, "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday"},
	}
	for _, tc := range tests {
		got, err := DayNames(tc.mask)
		if err != nil || got != tc.want {
			t.Errorf("DayNames(%d) = %q, %v; want %q", tc.mask, got, err, tc.want)
		}
	}
	for _, bad := range []int{0, -1, 128, 255, math.MaxInt} {
		if got, err := DayNames(bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("DayNames(%d) = %q, %v; want ErrInvalidRequest", bad, got, err)
		}
	}
}

func TestDayMask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		names string
		want  int
	}{
		{"All", 127}, {"all", 127}, {"ALL", 127},
		{"Weekdays", 62}, {"weekdays", 62},
		{"SUN", 1}, {"Sunday", 1}, {"sunday", 1},
		{"MON", 2}, {"TUES", 4}, {"Tuesday", 4}, {"WED", 8}, {"Wednesday", 8},
		{"THURS", 16}, {"thursday", 16}, {"FRI", 32}, {"Friday", 32}, {"SAT", 64}, {"Saturday", 64},
		{"Monday,Tuesday", 6},
		{" Mon , tues ", 6},
		{"Mon,Mon", 2},
		{"ALL,MON", 127},
		{"weekdays,sat,sun", 127},
	}
	for _, tc := range tests {
		got, err := DayMask(tc.names)
		if err != nil || got != tc.want {
			t.Errorf("DayMask(%q) = %d, %v; want %d", tc.names, got, err, tc.want)
		}
		if p, ok := proxyParse(tc.names); !ok || p != tc.want {
			t.Errorf("test case %q disagrees with the proxy (%d, %v)", tc.names, p, ok)
		}
	}
	for _, bad := range []string{"TUE", "tue", "THU", "Thu", "Mon,Tue", "Wed,THU", "1", "62", "127", "", " ", "Mon,", ",Mon", "Monday Tuesday", "Mo", "Sundays", "weekend"} {
		if got, err := DayMask(bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("DayMask(%q) = %d, %v; want ErrInvalidRequest", bad, got, err)
		}
		if _, ok := proxyParse(bad); ok {
			t.Errorf("test case %q: the proxy would accept it", bad)
		}
	}
	_, err := DayMask("Mon,TUE")
	if err == nil || !strings.Contains(err.Error(), "TUES") {
		t.Errorf("TUE error %v does not say the proxy wants TUES", err)
	}
	_, err = DayMask("THU")
	if err == nil || !strings.Contains(err.Error(), "THURS") {
		t.Errorf("THU error %v does not say the proxy wants THURS", err)
	}
}

// TestDayRoundTrip covers every mask: what DayNames writes, the proxy reads
// back as the same mask.
func TestDayRoundTrip(t *testing.T) {
	t.Parallel()
	for mask := 0; mask < 128; mask++ {
		names, err := DayNames(mask)
		if mask == 0 {
			if err == nil {
				t.Errorf("DayNames(0) = %q, want an error: the proxy has no spelling for no days", names)
			}
			continue
		}
		if err != nil {
			t.Fatalf("DayNames(%d): %v", mask, err)
		}
		if back, err := DayMask(names); err != nil || back != mask {
			t.Errorf("DayMask(DayNames(%d) = %q) = %d, %v", mask, names, back, err)
		}
		if p, ok := proxyParse(names); !ok || p != mask {
			t.Errorf("the proxy reads DayNames(%d) = %q as %d, %v", mask, names, p, ok)
		}
		for _, item := range strings.Split(names, ",") {
			if u := strings.ToUpper(item); u == "TUE" || u == "THU" {
				t.Errorf("DayNames(%d) = %q uses %s", mask, names, item)
			}
		}
	}
}

func TestScheduleRequestJSON(t *testing.T) {
	t.Parallel()
	proxy := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, `{"response":{"result":true,"reason":""}}`)
	})
	c := New("http://fleet.invalid", staticToken(testToken), WithCommandURL(proxy.URL()))
	// All booleans false: each must still be sent, as a real boolean.
	req := ScheduleRequest{ID: 1735686000, DaysOfWeek: " mon,TUES, wed,thursday,FRI ", StartTime: 0, EndTime: 1439, Lat: 52.2296756, Lon: -21.5}
	if err := c.AddChargeSchedule(context.Background(), testVIN, req); err != nil {
		t.Fatal(err)
	}
	reqs := proxy.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	var got map[string]any
	if err := json.Unmarshal(reqs[0].Body, &got); err != nil {
		t.Fatalf("body %s: %v", reqs[0].Body, err)
	}
	want := map[string]any{
		"id": float64(1735686000), "days_of_week": "Weekdays",
		"enabled": false, "start_enabled": false, "end_enabled": false, "one_time": false,
		"start_time": float64(0), "end_time": float64(1439), "lat": 52.2296756, "lon": -21.5,
	}
	if len(got) != len(want) {
		t.Errorf("body has keys %v, want exactly %v", keys(got), keys(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v (%T), want %#v (%T)", k, got[k], got[k], v, v)
		}
	}

	// And with everything true, one named day.
	req = ScheduleRequest{ID: 2, DaysOfWeek: "sat", Enabled: true, StartEnabled: true, EndEnabled: true, OneTime: true, StartTime: 1320, EndTime: 360, Lat: 1, Lon: 2}
	if err := c.AddChargeSchedule(context.Background(), testVIN, req); err != nil {
		t.Fatal(err)
	}
	body := string(proxy.requests()[1].Body)
	const wantBody = `{"id":2,"days_of_week":"Saturday","enabled":true,"start_enabled":true,"end_enabled":true,"start_time":1320,"end_time":360,"one_time":true,"lat":1,"lon":2}`
	if body != wantBody {
		t.Errorf("body\n%s\nwant\n%s", body, wantBody)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestScheduleRequestValidation(t *testing.T) {
	t.Parallel()
	proxy := newFakeTesla(t, func(w http.ResponseWriter, r *http.Request) { answer(w, 200, `{"response":{"result":true}}`) })
	c := New("http://fleet.invalid", staticToken(testToken), WithCommandURL(proxy.URL()))
	good := ScheduleRequest{ID: 1, DaysOfWeek: "All", StartTime: 60, EndTime: 120, Lat: 52, Lon: 21}
	tests := []struct {
		name   string
		change func(*ScheduleRequest)
	}{
		{"id 0 lets the proxy pick one we cannot learn", func(s *ScheduleRequest) { s.ID = 0 }},
		{"negative id", func(s *ScheduleRequest) { s.ID = -1 }},
		{"id beyond float64 precision", func(s *ScheduleRequest) { s.ID = 1<<53 + 1 }},
		{"TUE", func(s *ScheduleRequest) { s.DaysOfWeek = "Mon,TUE" }},
		{"THU", func(s *ScheduleRequest) { s.DaysOfWeek = "THU" }},
		{"integer days", func(s *ScheduleRequest) { s.DaysOfWeek = "62" }},
		{"no days", func(s *ScheduleRequest) { s.DaysOfWeek = "" }},
		{"start past midnight", func(s *ScheduleRequest) { s.StartTime = 1440 }},
		{"negative end", func(s *ScheduleRequest) { s.EndTime = -1 }},
		{"latitude", func(s *ScheduleRequest) { s.Lat = 91 }},
		{"longitude", func(s *ScheduleRequest) { s.Lon = -181 }},
		{"NaN", func(s *ScheduleRequest) { s.Lat = math.NaN() }},
	}
	for _, tc := range tests {
		req := good
		tc.change(&req)
		if err := c.AddChargeSchedule(context.Background(), testVIN, req); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", tc.name, err)
		}
	}
	for _, id := range []int64{0, -5, 1<<53 + 1} {
		if err := c.RemoveChargeSchedule(context.Background(), testVIN, id); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("remove id %d: err = %v, want ErrInvalidRequest", id, err)
		}
	}
	if err := c.AddChargeSchedule(context.Background(), "", good); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty VIN: err = %v, want ErrInvalidRequest", err)
	}
	if n := len(proxy.requests()); n != 0 {
		t.Errorf("%d invalid requests were sent, want 0", n)
	}
	if err := c.AddChargeSchedule(context.Background(), testVIN, good); err != nil {
		t.Errorf("the valid request fails: %v", err)
	}
}
