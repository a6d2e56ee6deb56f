set terminal pngcairo size 1100,560 noenhanced
set output 'compare.png'
set title 'cairn / peer, 1000000 nodes (above 1: cairn faster)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set logscale y 10
set yrange [0.0590801:177.808]
set grid ytics
set key outside right top
set xtics rotate by -25
set datafile missing 'NaN'
set ylabel 'ratio cairn/peer (log scale)'
plot for [i=2:5] 'ratios.dat' using i:xtic(1) title columnheader(i), 1 with lines lc rgb 'black' dt 2 notitle
