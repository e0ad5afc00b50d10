//! An SVG plot of a simulation (or of an observed run): arrival rate, lag in events, lag in
//! seconds against the lag SLO, and replicas over time for every policy. The legend sits on the
//! replicas panel, where the policies differ most.

use plotters::{coord::Shift, prelude::*};

use super::{Report, model::Tick};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Draws one panel: a value of the ticks over minutes, one line per series.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    series: &[(&str, &[Tick], RGBColor)],
    value: fn(&Tick) -> f64,
    legend: bool,
    slo: Option<f64>,
) -> Result<(), String> {
    let Some(first) = series.first() else {
        return Ok(());
    };
    let t_max = first.1.last().map_or(1.0, |t| t.t).max(1.0) / 60.0;
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(value))
        .fold(slo.unwrap_or(1.0), f64::max)
        * 1.1;
    // Downsample to at most ~2000 points per line.
    let every = (first.1.len() / 2000).max(1);
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(25)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(err)?;
    c.configure_mesh().x_desc("minutes").draw().map_err(err)?;
    for (name, ticks, color) in series {
        let color = *color;
        c.draw_series(LineSeries::new(
            ticks.iter().step_by(every).map(|t| (t.t / 60.0, value(t))),
            color,
        ))
        .map_err(err)?
        .label(*name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    if let Some(slo) = slo {
        let red = RGBColor(200, 0, 0);
        c.draw_series(DashedLineSeries::new(
            [(0.0, slo), (t_max, slo)],
            6,
            4,
            red.stroke_width(2),
        ))
        .map_err(err)?;
        c.draw_series(std::iter::once(Text::new(
            format!("lag SLO {slo:.0} s"),
            (t_max * 0.01, slo * 1.02),
            ("sans-serif", 14).into_font().color(&red),
        )))
        .map_err(err)?;
    }
    if legend {
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Writes the plot to `path` (SVG); `slo_seconds` draws the lag SLO on the lag-seconds panel.
pub fn svg(
    path: &std::path::Path,
    scenario: &str,
    reports: &[Report],
    slo_seconds: Option<f64>,
) -> Result<(), String> {
    let Some(first) = reports.first() else {
        return Ok(());
    };
    let root = SVGBackend::new(path, (1200, 1200)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((4, 1));
    let policies: Vec<(&str, &[Tick], RGBColor)> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.policy.as_str(),
                r.ticks.as_slice(),
                COLORS[i % COLORS.len()],
            )
        })
        .collect();
    panel(
        &panels[0],
        &format!("{scenario}: arrival rate (events/s)"),
        &[("arrival", &first.ticks, BLACK)],
        |t| t.arrival,
        false,
        None,
    )?;
    panel(
        &panels[1],
        "lag (events)",
        &policies,
        |t| t.lag,
        false,
        None,
    )?;
    panel(
        &panels[2],
        "lag (seconds behind)",
        &policies,
        |t| t.lag_seconds,
        false,
        slo_seconds,
    )?;
    panel(
        &panels[3],
        "replicas",
        &policies,
        |t| f64::from(t.replicas),
        true,
        None,
    )?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str) -> Report {
        Report::of_ticks(
            name,
            (0..120)
                .map(|t| Tick {
                    t: f64::from(t),
                    arrival: 1000.0,
                    lag: f64::from(t * 10),
                    lag_seconds: f64::from(t) / 100.0,
                    replicas: 1 + t / 40,
                })
                .collect(),
        )
    }

    #[test]
    fn the_legend_is_on_the_replicas_panel_and_the_slo_is_drawn() {
        let dir = std::env::temp_dir().join(format!("plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.svg");
        svg(&path, "step", &[report("ours"), report("keda")], Some(15.0)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} not in the plot"))
        };
        assert!(at("lag (seconds behind)") > at("lag (events)"));
        // The legend (the policies' names) follows the replicas panel's caption.
        assert!(
            at("ours") > at("replicas"),
            "legend before the replicas panel"
        );
        assert!(text.contains("lag SLO 15 s"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
