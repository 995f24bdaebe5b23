#!/usr/bin/env bash
# The whole study (results/study/README.md) on a 2-core CPU, as two lanes, one per core. Every step is a
# resumable `grokmuon train -m` or `grokmuon tune`: a lane started again skips what is complete and resumes
# what was cut off (from its checkpoint where it has one), so run the lanes until they say "done".
#   scripts/study.sh 1 &   scripts/study.sh 2 &     # the two lanes, side by side
#   scripts/study.sh 3 &   scripts/study.sh 4 &     # then the heads at each optimizer's tuned setting
#   scripts/study.sh 5 &   scripts/study.sh 6 &     # edge-aware re-tuning: every choice on a grid edge raced past it
#   scripts/study.sh 7 &   scripts/study.sh 8 &     # batch size and width on fresh seeds, tuned per batch size
#   scripts/study.sh 9 &   scripts/study.sh 10 &    # the later study's protocol (moddiv 50/50, its rule), tuned per condition (AdamW, Muon)
#   scripts/study.sh 11 &  scripts/study.sh 12 &    # what is learned (Fourier probes) and whether it holds
#   scripts/study.sh 13 &  scripts/study.sh 14 &    # which part of Muon groks sooner: eight arms, each tuned and confirmed
#   scripts/study.sh 15                              # Muon's AdamW part at three lrs, at Muon's tuned setting (a check)
#   scripts/study.sh report                          # the tables and figures of every results folder the lanes feed
#   scripts/study.sh 13 5 8 9 3 &  scripts/study.sh 14 6 7 10 4 &   # lanes one after another, one queue a core
#     (lane 8 reads moddiv's choices, which lane 5 may move: after it, in the same queue; lanes 3 and 4 read
#     every task's, so they come last; run either again once both 5 and 6 are done, and it trains only
#     what a moved choice changed)
# A lane re-run over complete cells changes no file in multirun/; `report` regenerates the committed
# results folders from the run folders (`git diff results` shows what changed).
# Lane 1: the head axis at each optimizer's defaults (experiment=heads; softmax seeds 3-4 beside
#         results/cpu's 0-2). Lane 2: tune-and-confirm for the four tasks left, then the robustness grid
#         for moddiv at its tuned settings (results/tune) and what modadd's may still lack.
# Lanes 3 (AdamW) and 4 (Muon): stablemax and sparsemax at each task's tuned setting (experiment=heads_tuned;
#         each read from its confirmation run in multirun/tune, cheapest tasks first).
# Lanes 13 and 14: the ablation arms of conf/tune_arms.yaml (experiment=arms), four a lane, each raced on
#         the same 4 x 3 budget on seeds 0-2 and its choice run on the fresh seeds 300-304 to the budget.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread per process: two lanes fill two cores

tuned() {   # tuned <sweep> <task> <optimizer> <batch> [<width>]: "lr weight_decay" of that sweep's one confirmation run
  $bin/python -c 'import sys; from grokmuon.tune import confirmed_main; confirmed_main(sys.argv[1:])' "$@"
}
lane() {   # lane <n>: one lane (see the list above)
case "$1" in
  1)
    $bin/grokmuon train -m experiment=heads
    $bin/grokmuon train -m experiment=heads head=softmax 'seeds=[3,4]'
    ;;
  2)
    for task in modmul modsub modexp parity; do $bin/grokmuon tune task=$task; done
    $bin/grokmuon train -m experiment=robustness optimizer=adamw optimizer.lr=0.003 optimizer.weight_decay=0.3
    $bin/grokmuon train -m experiment=robustness optimizer=muon optimizer.lr=0.02 optimizer.weight_decay=0.15
    $bin/grokmuon train -m experiment=robustness task=moddiv optimizer=adamw optimizer.lr=0.003 optimizer.weight_decay=0.3
    $bin/grokmuon train -m experiment=robustness task=moddiv optimizer=muon optimizer.lr=0.01 optimizer.weight_decay=0.15
    ;;
  3|4)
    # Each task's setting is its one confirmation in multirun/tune (the edge re-tuning's where it moved a
    # choice: run these lanes after 5 and 6); this optimizer's cells there at an earlier choice move to
    # multirun/heads_tuned_superseded/ first (tune.retire_cells), so collect finds one setting a cell.
    opt=$([ "$1" = 3 ] && echo adamw || echo muon)
    for task in gcd modadd moddiv modmul modsub modexp parity; do       # cheapest first
      setting=$(tuned tune $task $opt 512)                            # ends this lane if there is none
      read -r lr wd <<< "$setting"
      $bin/python -c 'import sys; from grokmuon.tune import retire_cells_main; retire_cells_main(sys.argv[1:])' \
        multirun/heads_tuned $task $opt $lr $wd
      $bin/grokmuon train -m experiment=heads_tuned task=$task optimizer=$opt optimizer.lr=$lr optimizer.weight_decay=$wd
    done
    ;;
  5|6)
    # `grokmuon tune` again on the plan each task was tuned with: the committed races are skipped, a choice
    # on an edge is raced in windows past it (docs/tuning.md), the final choice confirmed on fresh seeds.
    # modexp is left out: both of its choices are inside the grid.
    if [ "$1" = 5 ]; then
      for task in gcd modadd moddiv; do $bin/grokmuon tune --plan conf/tune_v1.yaml task=$task; done
    else
      for task in modsub modmul parity; do $bin/grokmuon tune task=$task; done
    fi
    ;;
  7|8)
    # Lane 7: modadd, lane 8: moddiv. Tune at batch 128 (experiment=tune_batch), then every optimizer at
    # each batch size's own tuned setting on fresh seeds, widths 64 and 128 (experiment=robustness_fresh).
    task=$([ "$1" = 7 ] && echo modadd || echo moddiv)
    plan=conf/tune_v1.yaml          # the plan modadd and moddiv were tuned with at batch 512
    $bin/grokmuon tune --plan $plan experiment=tune_batch task=$task batch_size=128
    for opt in adamw muon; do
      for pair in tune:512 tune_batch:128; do
        setting=$(tuned "${pair%%:*}" $task $opt "${pair##*:}")     # ends this lane if there is none
        read -r lr wd <<< "$setting"
        $bin/grokmuon train -m experiment=robustness_fresh task=$task batch_size="${pair##*:}" optimizer=$opt \
          optimizer.lr=$lr optimizer.weight_decay=$wd
      done
    done
    ;;
  9|10)
    # Lane 9: AdamW, lane 10: Muon; each tuned per condition (races, windows past edges, confirmation on
    # fresh seeds), conditions in the order width x batch 64x512, 128x512, 64x128, 128x128. At the 50/50
    # split grokking can come late (width 64, batch 512, AdamW, multirun/outside: lr 3e-4 grokked nowhere
    # in 300 epochs, lr 1e-3's best median was 227), so a whole 36-member race could run for hours on one
    # core: each race runs in parts one after another (docs/tuning.md, "A race in parts": the same choice),
    # 4 at width 64 (one lr each), 12 at width 128 (one setting each), so each part finishes within a
    # session or job limit and is kept. Width 64 at batch 512 races in grid order (as it ran); every other
    # condition races first the part holding a prior (--race-first: the same choice, and the later parts
    # stop at the prior's median instead of running a slow lr to the budget): the same optimizer's
    # confirmed choice at width 64 and the same batch size, or at batch 512 for width 64 itself. Each
    # prior is an earlier condition of the same lane, so the lanes never wait on each other.
    opt=$([ "$1" = 9 ] && echo adamw || echo muon)
    for cond in 64:512 128:512 64:128 128:128; do
      width=${cond%%:*} batch=${cond##*:}
      model=$([ "$width" = 64 ] && echo small || echo default)
      chunks=$([ "$width" = 64 ] && echo 4 || echo 12)
      first=()
      if [ "$cond" != 64:512 ]; then
        setting=$(tuned outside moddiv $opt $([ "$width" = 64 ] && echo 512 || echo "$batch") 64)
        read -r lr wd <<< "$setting"
        first=(--race-first "$lr,$wd")
      fi
      $bin/grokmuon tune --arms $opt --race-chunks $chunks "${first[@]}" experiment=outside model=$model batch_size=$batch
    done
    ;;
  11|12)
    # Lane 11: the additive tasks (Fourier over Z_p), lane 12: the multiplicative ones (over Z_p^*).
    tasks=$([ "$1" = 11 ] && echo "modadd modsub" || echo "modmul moddiv")
    for task in $tasks; do $bin/grokmuon train -m experiment=mechanism task=$task; done
    ;;
  15)
    # Muon's AdamW part (embedding, head, gains) at lr 1e-3, 3e-3 and 1e-2 (experiment=adamw_part), Muon's
    # hidden matrices at their tuned setting, read from the confirmation run. gcd and modadd only: their
    # Muon choices are inside their grids; moddiv's may still move (lane 5).
    for task in gcd modadd; do
      setting=$(tuned tune $task muon 512)                            # ends this lane if there is none
      read -r lr wd <<< "$setting"
      $bin/grokmuon train -m experiment=adamw_part task=$task optimizer.lr=$lr optimizer.weight_decay=$wd
    done
    ;;
  13|14)
    # Lane 13: AdamW, AdamW on ⊥Grad, AdamW with Grokfast-EMA, Muon without orthogonalisation; lane 14:
    # Muon, Muon without momentum, Muon on every matrix, NorMuon. A re-run skips every finished race.
    if [ "$1" = 13 ]; then arms=adamw,adamw_orthograd,adamw_grokfast,muon_nons
    else arms=muon,muon_nomomentum,muon_all,normuon
    fi
    for task in modadd moddiv gcd; do $bin/grokmuon tune --plan conf/tune_arms.yaml --arms $arms task=$task; done
    ;;
  report)
    $bin/grokmuon collect multirun/cpu multirun/heads --name study
    $bin/grokmuon report --runs results/study/runs.csv
    $bin/grokmuon figures --runs results/study/runs.csv
    $bin/grokmuon collect multirun/tune --name tune
    $bin/grokmuon report --runs results/tune/runs.csv
    $bin/grokmuon figures --runs results/tune/runs.csv
    $bin/grokmuon collect multirun/tune multirun/heads_tuned --name heads_tuned
    $bin/grokmuon report --runs results/heads_tuned/runs.csv
    $bin/grokmuon figures --runs results/heads_tuned/runs.csv
    $bin/grokmuon collect multirun/robustness --name robustness
    $bin/grokmuon report --runs results/robustness/runs.csv
    $bin/grokmuon figures --runs results/robustness/runs.csv
    $bin/grokmuon collect multirun/mechanism --name mechanism
    $bin/grokmuon report --runs results/mechanism/runs.csv
    $bin/grokmuon figures --runs results/mechanism/runs.csv
    # Every arm against AdamW, and each of Muon's ablations against Muon itself (what removing a part costs)
    $bin/grokmuon collect multirun/arms --name arms
    $bin/grokmuon report --runs results/arms/runs.csv --pair muon 'muon momentum=0' --pair muon 'muon ns_steps=0' \
      --pair muon 'muon split=all' --pair muon normuon
    $bin/grokmuon figures --runs results/arms/runs.csv
    $bin/grokmuon collect multirun/adamw_part --name adamw_part
    $bin/grokmuon report --runs results/adamw_part/runs.csv --arm-by adamw_lr --reference 'muon adamw_lr=0.001'
    $bin/grokmuon figures --runs results/adamw_part/runs.csv --arm-by adamw_lr
    # Batch 128's races and confirmations (lanes 7, 8), the fresh-seed grid at each batch size's own
    # setting (the same lanes), the later study's protocol (9, 10): a row per batch size and width, each
    # tuned on its own. A part not yet run is skipped with a line.
    for part in tune_batch robustness_fresh outside; do
      [ -d multirun/$part ] || { echo "study report: multirun/$part not run yet; skipped"; continue; }
      $bin/grokmuon collect multirun/$part --name $part
      $bin/grokmuon report --runs results/$part/runs.csv
      $bin/grokmuon figures --runs results/$part/runs.csv
    done
    ;;
esac
echo "study $1: done"
}
# Several lanes one after another from one command (scripts/study.sh 13 5 8 9 3 & scripts/study.sh 14 6 7 10 4 &):
# each is checked before any runs, so a typo stops nothing hours later.
for l in "${@:-}"; do
  [[ "$l" =~ ^([1-9]|1[0-5]|report)$ ]] || {
    echo "usage: scripts/study.sh LANE [LANE ...]; a LANE is 1-15 or report (got '$l')" >&2; exit 2; }
done
[ -x $bin/grokmuon ] || make install
if [ $# -eq 1 ]; then lane "$1"; exit; fi
# Several: each lane in a process of its own (set -e stops a lane at its first failing step; bash ignores
# it inside a function called before ||), reported if it fails; the lanes after it still run.
failed=()
for l in "$@"; do
  bash "$0" "$l" || { echo "study $l: failed (exit $?); going on with the lanes after it" >&2; failed+=("$l"); }
done
[ ${#failed[@]} -eq 0 ] || { echo "study: lanes that failed: ${failed[*]}" >&2; exit 1; }
